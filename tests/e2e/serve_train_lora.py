"""Serve ``train_lora`` as a deployment (run by the cancellation end-to-end test)."""

from prefect import serve

from prefect_scenario.training.flows import train_lora

if __name__ == "__main__":
    serve(train_lora.to_deployment(name="train-lora"))
