"""The receiver's gate: a cooldown only after a read that found the end, one read per floor, one re-check."""

from __future__ import annotations

from prefect_scenario.webhooks.gate import HintGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def gate_at(clock: Clock, **options: float) -> HintGate:
    return HintGate(cooldown_seconds=30, floor_seconds=1, clock=clock, **options)  # type: ignore[arg-type]


def read(gate: HintGate, key: str, *, ended: bool, recheck_in: float | None = None) -> float | None:
    """A delivery read at once: admitted now, begun, done."""
    assert gate.admit(key) == 0.0
    due = gate.due(key)
    assert due is not None and gate.begin(key, due)
    return gate.done(key, ended=ended, recheck_in=recheck_in)


def test_a_forged_completed_starts_no_cooldown_and_the_real_delivery_is_read_at_once() -> None:
    clock = Clock()
    gate = gate_at(clock)
    # Forged, 3 s before the real end: one read, one re-check scheduled just after the predicted end.
    assert read(gate, "m", ended=False, recheck_in=3.0) == 3.25
    clock.now = 3.0  # the real delivery, at the real end: read at once, not after a cooldown
    assert read(gate, "m", ended=True) is None
    # The re-check that was due is superseded; replays of the real one cost nothing for the cooldown.
    assert gate.begin("m", 3.25) is False
    clock.now = 29.9
    assert gate.admit("m") is None
    clock.now = 33.0
    assert gate.admit("m") == 0.0


def test_a_flood_costs_one_read_per_floor_and_no_delivery_is_dropped() -> None:
    clock = Clock()
    gate = gate_at(clock)
    assert read(gate, "m", ended=False) is None  # far from the end: no re-check
    clock.now = 0.2
    assert gate.admit("m") == 0.8  # within the floor: one read at its end
    assert [gate.admit("m") for _ in range(50)] == [None] * 50  # coalesced into that read
    clock.now = 1.0
    assert gate.begin("m", 1.0) is True
    assert gate.admit("m") is None  # during the read: one read after it
    assert gate.done("m", ended=False) == 1.0
    clock.now = 2.0
    assert gate.begin("m", 2.0) and gate.done("m", ended=True) is None


def test_an_early_genuine_delivery_schedules_one_re_check_and_a_failed_read_no_cooldown() -> None:
    clock = Clock()
    gate = gate_at(clock)
    assert read(gate, "m", ended=False, recheck_in=0.0) == 1.0  # the API still says training: re-check after the floor
    assert read(gate, "n", ended=False, recheck_in=600.0) is None  # far off: the watcher's business
    clock.now = 1.0
    assert gate.begin("m", 1.0) and gate.done("m", ended=True) is None
    clock.now = 5.0
    assert read(gate, "x", ended=False) is None  # a failed hint counts as not ended: the next delivery reads


def test_the_gate_forgets_old_models_idle_ones_first() -> None:
    clock = Clock()
    gate = HintGate(max_models=2, clock=clock)
    assert gate.admit("a") == 0.0 and gate.admit("b") == 0.0  # both scheduled, not begun
    assert gate.begin("a", 0.0) and gate.done("a", ended=True) is None
    assert gate.admit("c") == 0.0  # "a" (idle, cooling down) goes, not "b" (due)
    assert set(gate._models) == {"b", "c"}
