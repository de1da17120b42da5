"""Preflight: the local dataset preflight of a folder of 50 images of 8 MB each.

Each measurement runs ``preflight_directory`` in a fresh child process: the time is
the call's own (the import of ``prefect_scenario``, about 2–3 s because it imports
Prefect, is not counted), the memory is the child's peak RSS (``VmHWM``; see
``bench_memory._peak_mb`` for why not ``ru_maxrss`` alone: after ``exec`` it still
carries the forking parent's high-water mark). Baselines: reading and hashing the same
files without decoding them (time), and a child that only imports the module (memory).

The PNGs are noise, which PNG cannot compress: the worst case for their decoder. The
JPEG row (no target) shows the other decoder: libjpeg must entropy-decode every byte
even at 1/8 scale, so a JPEG costs about three times a PNG of the same size.
Needs no Prefect server and no network.

    python -m benchmarks.bench_preflight [--smoke]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import CACHE, REPS, SMOKE, Row, median, noisy_pngs, print_rows

BASELINE = (
    "reading and hashing the same files without decoding them (time); a child that only imports the module (memory)"
)

IMAGES = 50
IMAGE_BYTES = 8_000_000
LIMIT_SECONDS = 2.0
LIMIT_MB = 300.0
ROOT = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def child(config: dict[str, Any]) -> None:
    """In the child: import, then preflight the folder (or only read it), print the result as JSON."""
    import hashlib
    import time

    from prefect_scenario.dataset.checks import summarize
    from prefect_scenario.dataset.measure import preflight_directory

    folder = Path(config["folder"])
    started, cpu = time.monotonic(), time.process_time()
    summary = ""
    if config["mode"] == "preflight":
        summary = summarize(preflight_directory(folder))
    elif config["mode"] == "read":
        for path in sorted(folder.iterdir()):
            hashlib.sha256(path.read_bytes()).hexdigest()
    wall, cpu = time.monotonic() - started, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": _peak_mb(), "summary": summary}))


def _run_child(mode: str, folder: Path) -> dict[str, Any]:
    config = json.dumps({"mode": mode, "folder": str(folder)})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_preflight", "--child", config],
        cwd=ROOT,
        env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the child failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def noisy_jpegs(count: int, nbytes: int, *, seed: int = 0) -> Path:
    """A folder of ``count`` distinct JPEGs of about ``nbytes`` each (blurred noise), cached."""
    from PIL import Image

    folder = CACHE / f"jpeg-{count}x{nbytes}-{seed}"
    paths = [folder / f"img-{i:03d}.jpg" for i in range(count)]
    if all(p.is_file() for p in paths):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    side = int(nbytes**0.5)  # quality 95 on 2× upscaled noise: about 1 byte a pixel
    base = Image.frombytes("RGB", (side // 2, side // 2), rng.randbytes((side // 2) ** 2 * 3))
    base = base.resize((side + count, side), Image.Resampling.BICUBIC)
    for i, path in enumerate(paths):
        buffer = io.BytesIO()
        base.crop((i, 0, i + side, side)).save(buffer, "JPEG", quality=95)
        path.with_suffix(".tmp").write_bytes(buffer.getvalue())
        path.with_suffix(".tmp").replace(path)
    return folder


def _measure(mode: str, folder: Path, reps: int) -> list[dict[str, Any]]:
    return [_run_child(mode, folder) for _ in range(reps)]


def run(smoke: bool = SMOKE) -> list[dict[str, Any]]:
    """The rows; ``smoke`` checks the benchmark itself on 5 images of 1 MB, one repetition."""
    count, nbytes, reps = (5, 1_000_000, 1) if smoke else (IMAGES, IMAGE_BYTES, REPS)
    case = f"{count} × {nbytes // 1_000_000} MB"
    pngs = noisy_pngs(count, nbytes, seed=7)[0].parent
    runs = _measure("preflight", pngs, reps)
    reads = _measure("read", pngs, reps)
    idle = _measure("idle", pngs, reps)
    jpegs = _measure("preflight", noisy_jpegs(count, nbytes, seed=11), reps)
    wall, png_peak = median([r["wall"] for r in runs]), median([r["peak_mb"] for r in runs])
    ru_maxrss = max(r["ru_maxrss_mb"] for r in runs)
    jpeg_peak = median([r["peak_mb"] for r in jpegs])
    # The machine may be shared: CPU seconds and the load average say how much of the wall was ours.
    load = f"CPU {median([r['cpu'] for r in runs]):.2f} s, load average {os.getloadavg()[0]:.1f}"
    rows = [
        Row("preflight", f"{case} PNG", "wall time (vs read + SHA-256)", "s", wall, median([r["wall"] for r in reads]),
            LIMIT_SECONDS, on_ratio=False, note=f"{wall / count * 1000:.0f} ms/image, {load}; {runs[0]['summary']}"),
        Row("preflight", f"{case} PNG", "peak RSS (vs idle import)", "MB", png_peak,
            median([r["peak_mb"] for r in idle]), LIMIT_MB, on_ratio=False,
            note=f"ru_maxrss (RUSAGE_CHILDREN) {ru_maxrss:.0f} MB"),
        Row("preflight", f"{case} JPEG", "wall time (vs PNG)", "s", median([r["wall"] for r in jpegs]), wall,
            note=f"no target; CPU {median([r['cpu'] for r in jpegs]):.2f} s, peak {jpeg_peak:.0f} MB"),
    ]  # fmt: skip
    return [row.to_dict() for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help="internal: run as the measured child with this JSON config")
    parser.add_argument("--smoke", action="store_true", help="5 images of 1 MB, one repetition")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
    else:
        print_rows(run(smoke=args.smoke))


if __name__ == "__main__":
    main()
