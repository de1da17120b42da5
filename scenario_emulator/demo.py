"""``make demo``: the whole loop on a local Scenario emulator and a local S3 (moto server).

1. starts the emulator and moto's S3 server on free loopback ports;
2. generates a small set of curated images and puts them in a bucket;
3. runs the real ``train_lora`` flow on their ``s3://`` URIs (Prefect's ephemeral
   mode, or with ``--ui`` a ``prefect server`` kept up afterwards), then says what it made;
4. runs it again: the same model comes back without a second training;
5. runs ``train_edit_lora`` on generated before/after pairs.

Nothing leaves the machine; the emulator's training takes a few seconds.
"""

from __future__ import annotations

import io
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
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


def _run(flow: Any, urls: list[str], server: Any, **kwargs: Any) -> Any:
    """Call ``flow`` as a user's script does; note its run's UI page when a server is kept up."""
    state = flow(**kwargs, return_state=True)
    if server is not None:
        urls.append(server.run_url(state.state_details.flow_run_id))
    return state.result()


def _run_flows(credentials: Any, aws: Any, uris: list[str], server: Any = None) -> list[str]:
    """Train a LoRA twice on the same images (the second run reuses the model), then an edit LoRA.

    Returns:
        The UI page of each flow run (none without ``server``).
    """
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
    urls: list[str] = []
    print("Training hero-character (flux.2-dev-lora, 6 images, 4 epochs)...")
    first = _run(train_lora, urls, server, **lora, **kwargs)
    print(f"  trained: model {first.model_id}, {first.status}, {first.creative_units_cost or 0:g} creative units")
    again = _run(train_lora, urls, server, **lora, **kwargs)
    print(f"Same dataset again: model {again.model_id} reused={again.reused} (nothing spent)")

    before_after = generate_images(4, seed=7)
    pairs: list[Any] = [
        (before_after[0], before_after[1], "make the background a snowy forest"),
        (before_after[2], before_after[3], "make the background a snowy forest"),
    ]
    print("Training snowy-backgrounds (qwen-image-edit-2511-lora, 2 before/after pairs)...")
    edit = _run(
        train_edit_lora,
        urls,
        server,
        name="snowy-backgrounds",
        training_type="qwen-image-edit-2511-lora",
        pairs=pairs,
        credentials=credentials,
        poll_policy=fast,
    )
    print(f"  trained: model {edit.model_id}, {edit.status} ({edit.pairs} pairs)")
    return urls


def _story(credentials: Any, aws_endpoint: str, emulator: Any, server: Any) -> list[str]:
    from prefect_aws import AwsClientParameters, AwsCredentials

    aws = AwsCredentials(
        aws_access_key_id="demo",
        aws_secret_access_key="demo-secret",  # noqa: S106 - moto accepts any pair
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=aws_endpoint),
    )
    uris = _upload_curated(aws.get_s3_client())
    urls = _run_flows(credentials, aws, uris, server)
    print(f"Done: the emulator served {len(emulator.requests())} API requests for three flow runs.")
    return urls


def _keep_up(server: Any, urls: list[str]) -> None:
    print(f"\nPrefect UI: {server.url}  (runs, artifacts and blocks; Ctrl-C stops the server)")
    for url in urls:
        print(f"  {url}")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # `kill` stops the servers as Ctrl-C does

    signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("Stopped.")


def main(*, ui: bool = False) -> int:
    """Run the demo; return the process exit code (1 with one line saying what to do on failure).

    Args:
        ui: start a Prefect server with its UI and keep it up afterwards, printing each run's page.
    """
    from scenario_emulator.demo_server import DemoError, LocalPrefectServer, quiet_prefect

    server = LocalPrefectServer(Path(tempfile.mkdtemp(prefix="prefect-scenario-demo-")))
    try:
        print("Starting a local Prefect server (about 20 s; up to 10 min on a busy machine)...")
        server.start()
        with quiet_prefect(server.api_url):
            try:
                _with_services(server if ui else None)
            finally:
                _send_logs()
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the one line a user needs; details are in the Prefect UI or logs
        print(f"demo failed: {_one_line(exc)}. Everything is local and nothing was spent: run "
              "`prefect-scenario demo` again (`--ui` keeps the runs visible in the Prefect UI).",
              file=sys.stderr)  # fmt: skip
        return 1
    finally:
        server.stop()
    if not ui:
        print("See the runs, their artifacts and blocks in the Prefect UI: prefect-scenario demo --ui")
    return 0


def _send_logs() -> None:
    """Send the runs' queued log lines while the server is up (not at exit, once it stopped)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


def _with_services(server: Any) -> list[str]:
    from moto.server import ThreadedMotoServer

    from prefect_scenario.credentials import ScenarioCredentials
    from scenario_emulator.config import EmulatorConfig
    from scenario_emulator.server import EmulatorServer

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    config = EmulatorConfig(queue_seconds=1.0, start_seconds=0.5, train_seconds=4.0)
    try:
        with EmulatorServer(config) as emulator:
            print(f"Scenario emulator on {emulator.base_url}; S3 (moto) on http://127.0.0.1:{port}")
            credentials = ScenarioCredentials(
                api_key=config.api_key, api_secret=config.api_secret, project_id="demo", base_url=emulator.base_url
            )
            urls = _story(credentials, f"http://127.0.0.1:{port}", emulator, server)
            if server is not None:  # the emulator serves the summaries' sample images: keep it up too
                _keep_up(server, urls)
            return urls
    finally:
        moto.stop()
