"""``make demo``: the whole loop on a local Scenario emulator and a local S3 (moto server).

1. starts the emulator and moto's S3 server on free loopback ports;
2. generates a small set of curated images and puts them in a bucket;
3. runs the real ``train_lora`` flow on their ``s3://`` URIs (Prefect's ephemeral
   mode), showing progress, then the result;
4. runs it again: the same model comes back without a second training;
5. runs ``train_edit_lora`` on generated before/after pairs.

Nothing leaves the machine; the emulator's training takes a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import socket
from typing import Any

__all__ = ["generate_images", "main"]


def generate_images(count: int, *, size: int = 256, seed: int = 0) -> list[bytes]:
    """``count`` distinct PNG images (gradients with a shape), ``size`` px square."""
    from PIL import Image, ImageDraw

    images = []
    for index in range(count):
        hue = (seed * 37 + index * 53) % 255
        image = Image.new("RGB", (size, size), (hue, 255 - hue, (hue * 3) % 255))
        draw = ImageDraw.Draw(image)
        inset = size // 8 + index % (size // 4)
        draw.ellipse((inset, inset, size - inset, size - inset), fill=((hue + 128) % 255, 64, 160))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _upload_curated(s3: Any) -> list[str]:
    """Put the generated images in a bucket; return their ``s3://`` URIs."""
    s3.create_bucket(Bucket="studio-assets")
    uris = []
    for index, data in enumerate(generate_images(6)):
        key = f"curated/hero-character/hero-{index:02d}.png"
        s3.put_object(Bucket="studio-assets", Key=key, Body=data)
        uris.append(f"s3://studio-assets/{key}")
    print(f"Uploaded {len(uris)} curated images to s3://studio-assets/curated/hero-character/")
    return uris


def _run_flows(credentials: Any, aws: Any, uris: list[str]) -> None:
    """Train a LoRA twice on the same images (the second run reuses the model), then an edit LoRA."""
    from prefect_scenario.training.flows import train_edit_lora, train_lora
    from prefect_scenario.waiting.polling import PollPolicy

    fast = PollPolicy(queued=0.5, starting=0.25, unknown=0.5)
    kwargs: dict[str, Any] = {"credentials": credentials, "aws_credentials": aws, "poll_policy": fast}
    params = {"nbEpochs": 4, "samplePrompts": ["the hero character, full body"]}
    lora: dict[str, Any] = {
        "name": "hero-character",
        "training_type": "flux.2-dev-lora",
        "images": uris,
        "parameters": params,
    }
    # Plain sync calls, as a user's script makes them: each flow returns its result.
    first = train_lora(**lora, **kwargs)
    print("\nFirst run:", json.dumps(first.model_dump(mode="json"), indent=2))
    again = train_lora(**lora, **kwargs)
    print(f"\nSame dataset again: model {again.model_id}, reused={again.reused} (no credits spent)")

    before_after = generate_images(4, seed=7)
    pairs: list[Any] = [
        (before_after[0], before_after[1], "make the background a snowy forest"),
        (before_after[2], before_after[3], "make the background a snowy forest"),
    ]
    edit = train_edit_lora(
        name="snowy-backgrounds",
        training_type="qwen-image-edit-2511-lora",
        pairs=pairs,
        credentials=credentials,
        poll_policy=fast,
    )
    print(f"\nEdit LoRA: model {edit.model_id} is {edit.status} ({edit.pairs} pairs)")


def main() -> int:
    """Run the demo; return the process exit code."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from moto.server import ThreadedMotoServer
    from prefect_aws import AwsClientParameters, AwsCredentials

    from prefect_scenario.credentials import ScenarioCredentials
    from scenario_emulator.config import EmulatorConfig
    from scenario_emulator.server import EmulatorServer

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    config = EmulatorConfig(queue_seconds=1.0, start_seconds=0.5, train_seconds=4.0)
    try:
        with EmulatorServer(config) as emulator:
            print(f"Scenario emulator: {emulator.base_url}")
            print(f"S3 (moto server):  http://127.0.0.1:{port}")
            aws = AwsCredentials(
                aws_access_key_id="demo",
                aws_secret_access_key="demo-secret",  # noqa: S106 - moto accepts any pair
                region_name="us-east-1",
                aws_client_parameters=AwsClientParameters(endpoint_url=f"http://127.0.0.1:{port}"),
            )
            uris = _upload_curated(aws.get_s3_client())
            credentials = ScenarioCredentials(
                api_key=config.api_key, api_secret=config.api_secret, project_id="demo", base_url=emulator.base_url
            )
            _run_flows(credentials, aws, uris)
            print(f"\nThe emulator served {len(emulator.requests())} API requests for three flow runs.")
    finally:
        moto.stop()
    return 0
