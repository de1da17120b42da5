"""Memory: peak RSS of a process training from 50 images of 8 MB each read from S3.

The flow runs in a child process whose own peak RSS (``ru_maxrss``) is the
measurement, so neither the emulator (which keeps every upload), nor moto (which
keeps the bucket), nor this parent counts. The baseline is a child that only
imports ``prefect_scenario`` (what ``benchmarks._common`` imports of it: its flows,
tasks and sensor code): what any Prefect process costs before it does anything.
The child runs against this process's Prefect harness.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._common import (
    KEY,
    POLL_POLICY,
    REGION,
    REPS,
    SECRET,
    SMOKE,
    TRAINING_TYPE,
    Row,
    ScenarioCredentials,
    aws_client,
    median,
    moto_server,
    noisy_pngs,
    pick,
    run_alone,
    running_emulator,
    train_lora,
)

BASELINE = "a child process that only imports `prefect_scenario` (the names `benchmarks/_common.py` uses)"
IMAGES: int = pick(50, 2)
IMAGE_BYTES: int = pick(8_000_000, 50_000)
CONCURRENCY = 4  # train_lora's default
LIMIT_MB = 300.0
BUCKET = "bench-memory"
REPETITIONS = MEMORY_REPS = max(1, REPS - 2)
ROOT = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    """This process's peak RSS in MiB.

    ``VmHWM`` first: after ``exec``, Linux's ``ru_maxrss`` still carries the high-water
    mark of the process that forked it (this parent holds moto's 400 MB bucket).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(config: dict[str, Any]) -> None:
    """In the child process: train (or only import), then print the peak RSS as JSON."""
    if config.get("idle"):
        print(json.dumps({"peak_mb": _peak_mb()}))
        return
    from prefect_aws import AwsClientParameters, AwsCredentials

    aws = AwsCredentials(
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # moto accepts any pair
        region_name=REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=config["s3_endpoint"]),
    )
    started = time.monotonic()
    (  # a sync call: the flow returns its result
        train_lora(
            name=config["name"],
            training_type=TRAINING_TYPE,
            images=config["uris"],
            credentials=ScenarioCredentials.model_validate(config["credentials"]),
            aws_credentials=aws,
            upload_concurrency=CONCURRENCY,
            poll_policy=POLL_POLICY,
        )
    )
    print(json.dumps({"peak_mb": _peak_mb(), "wall": time.monotonic() - started}))


def _run_child(config: dict[str, Any], api_url: str) -> dict[str, float]:
    # The child talks to this process's harness server instead of starting its own.
    env = {**os.environ, "PREFECT_API_URL": api_url}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", "--child", json.dumps(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the child failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _load_bucket(endpoint: str) -> list[str]:
    s3 = aws_client("s3", endpoint)
    s3.create_bucket(Bucket=BUCKET)

    def put(path: Path) -> str:
        s3.put_object(Bucket=BUCKET, Key=f"curated/big/{path.name}", Body=path.read_bytes())
        return f"s3://{BUCKET}/curated/big/{path.name}"

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(put, noisy_pngs(IMAGES, IMAGE_BYTES, seed=2)))


def run() -> list[dict[str, Any]]:
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value())  # read here: the settings context does not reach pool threads
    peaks: dict[str, list[float]] = {"flow": [], "idle": []}
    walls: list[float] = []
    with moto_server() as endpoint, running_emulator() as emulator:
        uris = _load_bucket(endpoint)

        def config(rep: int) -> dict[str, Any]:
            project = f"proj_{uuid.uuid4().hex[:10]}"
            creds = {"api_key": KEY, "api_secret": SECRET, "project_id": project, "base_url": emulator.base_url}
            return {"name": f"memory-{rep}", "uris": uris, "s3_endpoint": endpoint, "credentials": creds}

        # Peak RSS varies by a few percent between runs: fewer repetitions than elsewhere.
        for rep in range(MEMORY_REPS):
            if SMOKE:  # nothing is measured: both children at once (each spends seconds importing)
                with ThreadPoolExecutor(2) as pool:
                    idle, flow = pool.map(_run_child, [{"idle": True}, config(rep)], [api_url] * 2)
                results = {"idle": idle, "flow": flow}
            else:
                order = ("flow", "idle") if rep % 2 == 0 else ("idle", "flow")
                results = {who: _run_child({"idle": True} if who == "idle" else config(rep), api_url) for who in order}
            peaks["idle"].append(results["idle"]["peak_mb"])
            peaks["flow"].append(results["flow"]["peak_mb"])
            walls.append(results["flow"]["wall"])
    row = Row(
        "memory",
        f"{IMAGES} × {IMAGE_BYTES / 1_000_000:g} MB",
        "peak RSS (flow vs idle import)",
        "MB",
        median(peaks["flow"]),
        median(peaks["idle"]),
        LIMIT_MB,
        on_ratio=False,
        note=f"upload_concurrency={CONCURRENCY}, flow {median(walls):.1f} s",
    )
    return [row.to_dict()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help="internal: run as the measured child with this JSON config")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
    else:
        run_alone(run)


if __name__ == "__main__":
    main()
