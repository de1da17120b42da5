"""The evaluation subcommands through the ``prefect-scenario`` entry point, against an emulator on a socket."""

from __future__ import annotations

import asyncio
import json

import pytest

from prefect_scenario.cli import main
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET

PROJECT = "proj_cli"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    """The command as a user runs it (``prefect-scenario ...``): JSON on stdout, or one error line on stderr."""
    code = main(argv)
    captured = capsys.readouterr()
    if code == 0:
        return code, json.loads(captured.out)
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    return code, {"error": captured.err}


async def _trained(server: EmulatorServer, start: int) -> str:
    import httpx

    from tests.emulator_fixtures import data_url, png_bytes

    async with httpx.AsyncClient(base_url=server.base_url, auth=(KEY, SECRET), params={"projectId": PROJECT}) as raw:
        model_id = (await raw.post("/models", json={"name": "hero", "type": "flux.2-dev-lora"})).json()["model"]["id"]
        for n in range(start, start + 3):
            body = {"name": f"{n}.png", "data": data_url(png_bytes((n, 9, 9), size=(8, 8)))}
            await raw.post(f"/models/{model_id}/training-images", json=body)
        await raw.put(f"/models/{model_id}/train", json={})
    server.advance_clock(60)
    return str(model_id)


@pytest.mark.usefixtures("prefect_harness")
def test_promote_force_production_and_rollback(
    fast_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("SCENARIO_API_KEY", KEY), ("SCENARIO_API_SECRET", SECRET), ("SCENARIO_PROJECT_ID", PROJECT),
                        ("SCENARIO_BASE_URL", fast_emulator.base_url)):  # fmt: skip
        monkeypatch.setenv(name, value)
    first, second = asyncio.run(_trained(fast_emulator, 0)), asyncio.run(_trained(fast_emulator, 10))
    dataset = "cli-hero-" + first[-6:]
    assert _run(["promote", first, "--dataset", dataset, "--force"], capsys)[1]["production"] == first
    assert _run(["promote", second, "--dataset", dataset, "--force"], capsys)[1]["production"] == second
    assert _run(["production", dataset], capsys)[1]["production"] == second
    assert _run(["rollback", dataset], capsys)[1]["production"] == first
    assert _run(["production", dataset], capsys)[1]["production"] == first
    code, answer = _run(["evaluate", "model_nope", "--dataset", dataset], capsys)
    assert code == 1 and "model_nope" in str(answer["error"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "model_x", "--dataset", "d", "--margin", "nan"], "--margin must be a finite number"),
        (["evaluate", "model_x", "--dataset", "d", "--margin", "-1"], "--margin must be at least 0"),
        (["train", "--type", "flux.2-dev-lora", "--name", "x", "--promote", "--no-wait", "a.png"], "--no-wait"),
    ],
    ids=["nan-margin", "negative-margin", "promote-without-wait"],
)
def test_bad_evaluation_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, answer = _run(argv, capsys)
    assert code == 2 and message in str(answer["error"])
