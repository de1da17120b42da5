"""Serve ``train_lora`` and ``train_lora_fleet`` as deployments (run by the deployments end-to-end test)."""

from prefect import serve

from prefect_scenario import train_lora, train_lora_fleet

if __name__ == "__main__":
    serve(train_lora.to_deployment(name="train-lora"), train_lora_fleet.to_deployment(name="train-lora-fleet"))
