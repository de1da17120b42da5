"""The pure spend decisions: every case a value in, a value out."""

from __future__ import annotations

from datetime import date

import pytest

from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.decisions import (
    LedgerEntry,
    Limits,
    Verdict,
    daily_summary,
    decide_spend,
    sensor_over_budget,
)

TODAY = date(2026, 12, 2)


def entry(
    estimate: float,
    *,
    actual: float | None = None,
    status: str = "spent",
    dataset: str = "hero",
    day: str = "2026-12-02",
    fleet: str | None = None,
    id: str | None = None,
) -> LedgerEntry:
    return LedgerEntry(
        id=id or f"e{estimate}-{actual}-{status}-{dataset}-{day}-{fleet}", day=day, dataset=dataset, model_id="m",
        estimate=estimate, actual=actual, status=status, fleet=fleet,  # type: ignore[arg-type]
    )  # fmt: skip


CASES = [
    pytest.param([], 104, Limits(per_dataset=200), Verdict.ALLOW, None, id="first-of-the-day-fits"),
    pytest.param([entry(104, actual=104)], 104, Limits(per_dataset=200), Verdict.REFUSE, "per_dataset",
                 id="second-of-the-day-crosses-the-dataset-limit"),
    pytest.param([entry(104, actual=104)], 104, Limits(per_dataset=200, on_exceeded="pause"), Verdict.PAUSE,
                 "per_dataset", id="second-of-the-day-pauses-when-configured"),
    pytest.param([entry(100, actual=100)], 100, Limits(per_dataset=200), Verdict.ALLOW, None,
                 id="reaching-the-limit-exactly-is-allowed"),
    pytest.param([entry(104)], 104, Limits(per_dataset=200), Verdict.REFUSE, "per_dataset",
                 id="a-reservation-counts-its-estimate"),
    pytest.param([entry(104, actual=20)], 104, Limits(per_dataset=200), Verdict.ALLOW, None,
                 id="the-actual-cost-replaces-the-estimate"),
    pytest.param([entry(104, status="released")], 150, Limits(per_dataset=200), Verdict.ALLOW, None,
                 id="a-released-reservation-counts-nothing"),
    pytest.param([entry(104, actual=104, day="2026-12-01")], 104, Limits(per_dataset=200), Verdict.ALLOW, None,
                 id="yesterday-does-not-count-per-day"),
    pytest.param([entry(104, actual=104, day="2026-12-01")], 104, Limits(per_dataset=200, period="month"),
                 Verdict.REFUSE, "per_dataset", id="yesterday-counts-per-month"),
    pytest.param([entry(104, actual=104, dataset="villain")], 104, Limits(per_dataset=200), Verdict.ALLOW, None,
                 id="another-dataset-does-not-count-per-dataset"),
    pytest.param([entry(104, actual=104, dataset="villain")], 104, Limits(per_project=200), Verdict.REFUSE,
                 "per_project", id="another-dataset-counts-per-project"),
    pytest.param([entry(104, actual=104, fleet="f1", day="2026-11-30")], 104, Limits(per_fleet_run=200),
                 Verdict.REFUSE, "per_fleet_run", id="a-fleet-run-counts-across-days"),
    pytest.param([entry(104, actual=104, fleet="f2")], 104, Limits(per_fleet_run=200), Verdict.ALLOW, None,
                 id="another-fleet-run-does-not-count"),
    pytest.param([entry(104, id="mine")], 104, Limits(per_dataset=200), Verdict.ALLOW, None,
                 id="the-trainings-own-earlier-reservation-is-left-out"),
]  # fmt: skip


@pytest.mark.parametrize(("entries", "estimate", "limits", "verdict", "limit"), CASES)
def test_decide_spend(
    entries: list[LedgerEntry], estimate: float, limits: Limits, verdict: Verdict, limit: str | None
) -> None:
    decision = decide_spend(
        entries, estimate=estimate, limits=limits, today=TODAY, dataset="hero", fleet="f1", exclude_id="mine"
    )
    assert (decision.verdict, decision.limit) == (verdict, limit)


def test_the_reason_names_the_limit_the_spend_and_the_estimate() -> None:
    decision = decide_spend([entry(104, actual=104)], estimate=104, limits=Limits(per_dataset=200), today=TODAY,
                            dataset="hero")  # fmt: skip
    assert "per_dataset=200" in decision.reason and "104 spent or reserved" in decision.reason
    assert "estimated at 104" in decision.reason and (decision.spent, decision.estimate) == (104, 104)


@pytest.mark.parametrize(
    ("ceiling", "verdict"),
    [pytest.param(100, Verdict.REFUSE, id="below-the-estimate"), pytest.param(104, Verdict.ALLOW, id="equal"),
     pytest.param(150, Verdict.ALLOW, id="above")],
)  # fmt: skip
def test_max_creative_units_refuses_even_when_the_budget_pauses(ceiling: float, verdict: Verdict) -> None:
    decision = decide_spend([], estimate=104, limits=Limits(on_exceeded="pause"), today=TODAY, dataset="hero",
                            max_creative_units=ceiling)  # fmt: skip
    assert decision.verdict is verdict


SENSOR_CASES = [
    pytest.param([], Limits(per_dataset=200), None, id="no-history-no-skip"),
    pytest.param([entry(104, actual=104)], Limits(per_dataset=200), "per_dataset",
                 id="the-last-estimate-would-cross"),
    pytest.param([entry(104, actual=104)], Limits(per_dataset=300), None, id="the-last-estimate-fits"),
    pytest.param([entry(104, actual=104, dataset="villain"), entry(100, actual=100, dataset="villain")],
                 Limits(per_project=200), "per_project", id="the-project-is-used-up"),
    pytest.param([entry(104, actual=104, day="2026-12-01")], Limits(per_dataset=200), None,
                 id="a-new-day-is-a-new-budget"),
]  # fmt: skip


@pytest.mark.parametrize(("entries", "limits", "limit"), SENSOR_CASES)
def test_sensor_over_budget(entries: list[LedgerEntry], limits: Limits, limit: str | None) -> None:
    decision = sensor_over_budget(entries, dataset="hero", limits=limits, today=TODAY)
    assert (decision.limit if decision else None) == limit


def test_daily_summary_leaves_released_reservations_out() -> None:
    rows = daily_summary([entry(104, actual=100), entry(50, status="released"), entry(80)])
    assert rows == [{"date": "2026-12-02", "trainings": "2", "estimated": "184", "spent": "100", "reserved": "80"}]


BAD_BUDGETS = [
    pytest.param({"per_dataset": 0}, "per_dataset must be a positive", id="zero-limit"),
    pytest.param({"per_project": -5}, "per_project must be a positive", id="negative-limit"),
    pytest.param({"per_fleet_run": float("nan")}, "per_fleet_run must be a positive", id="nan-limit"),
    pytest.param({"period": "week"}, "period must be one of day, month", id="unknown-period"),
    pytest.param({"pause_timeout_seconds": 0}, "pause_timeout_seconds must be a positive", id="zero-pause-timeout"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "message"), BAD_BUDGETS)
def test_a_bad_budget_is_refused_at_construction(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ScenarioBudget(**fields)  # type: ignore[arg-type]
