"""Fault injection: what can go wrong with a request, and the pure decision of what does.

Kinds of fault, each with its own rate (a probability per matching request):

- ``error``: answer ``error_status`` (5xx) without doing the work. The SDK retries it.
- ``rate_limit``: answer 429 with ``Retry-After`` (whole seconds, rounded up) and
  ``retry-after-ms`` (exact), without doing the work.
- ``drop_before``: close the connection before doing the work (no effect).
- ``drop_after``: do the work, then close the connection without an answer: the
  dangerous case, where a retried create or trigger happens twice.

On top, ``latency_seconds`` is added to every matching request, and with
probability ``slow_rate`` a further ``slow_seconds`` (a spike past a client timeout).
The four kinds are exclusive; their rates must sum to at most 1.

Only ``/v1`` requests are subject to faults; ``methods`` and ``paths`` (substrings of
the path) narrow them further. ``limit`` caps how many faults (of the four kinds)
are injected in total, so "fail once, then succeed" is one setting.

Example:
    >>> import random
    >>> config = FaultConfig(error_rate=1.0, methods=("POST",), limit=1)
    >>> decide_fault(config, random.Random(0), method="POST", path="/v1/models", injected=0).kind
    'error'
    >>> decide_fault(config, random.Random(0), method="POST", path="/v1/models", injected=1).kind
    'none'
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

__all__ = ["FaultConfig", "FaultController", "FaultDecision", "FaultKind", "decide_fault", "fault_applies"]

FaultKind = Literal["none", "error", "rate_limit", "drop_before", "drop_after"]


@dataclass(frozen=True)
class FaultConfig:
    """What to inject, how often. All rates are probabilities in [0, 1].

    Example:
        >>> FaultConfig.from_wire({"rate_limit_rate": 0.5, "retry_after_seconds": 0.01, "seed": 7}).rate_limit_rate
        0.5
    """

    error_rate: float = 0.0
    error_status: int = 503
    rate_limit_rate: float = 0.0
    retry_after_seconds: float = 1.0
    drop_before_rate: float = 0.0
    drop_after_rate: float = 0.0
    latency_seconds: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    limit: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = {
            "error_rate": self.error_rate,
            "rate_limit_rate": self.rate_limit_rate,
            "drop_before_rate": self.drop_before_rate,
            "drop_after_rate": self.drop_after_rate,
            "slow_rate": self.slow_rate,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.error_rate + self.rate_limit_rate + self.drop_before_rate + self.drop_after_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + rate_limit_rate + drop_before_rate + drop_after_rate must be at most 1")
        if not 500 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 5xx status, got {self.error_status}")
        for name in ("latency_seconds", "slow_seconds", "retry_after_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))
        object.__setattr__(self, "paths", tuple(self.paths))

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (the snake_case field names).

        Raises:
            ValueError: an unknown field or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        values = dict(data)
        for f in fields(cls):
            value = values.get(f.name)
            if value is None or f.name in ("methods", "paths"):
                continue
            # JSON gives bools and floats where ints are meant: refuse them here, not deep inside a comparison.
            whole = f.name in ("error_status", "limit", "seed")
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
                raise ValueError(f"{f.name} must be {'an integer' if whole else 'a number'}, got {value!r}")
        for name in ("methods", "paths"):
            if name in values:
                if not isinstance(values[name], list | tuple) or not all(isinstance(v, str) for v in values[name]):
                    raise ValueError(f"{name} must be a list of strings")
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - every field has a default
            raise ValueError(str(exc)) from None

    def to_wire(self) -> dict[str, Any]:
        """The JSON form, as accepted by :meth:`from_wire`."""
        wire = asdict(self)
        wire["methods"] = list(self.methods)
        wire["paths"] = list(self.paths)
        return wire


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: a fault kind and a delay before anything else."""

    kind: FaultKind = "none"
    delay_seconds: float = 0.0


def fault_applies(config: FaultConfig, method: str, path: str) -> bool:
    """Whether a request is subject to ``config`` at all: a ``/v1`` path matching the filters."""
    if not (path == "/v1" or path.startswith("/v1/")):
        return False
    if config.methods and method.upper() not in config.methods:
        return False
    return not config.paths or any(p in path for p in config.paths)


def decide_fault(config: FaultConfig, rng: random.Random, *, method: str, path: str, injected: int) -> FaultDecision:
    """Decide the fault for one request. Pure but for the draws from ``rng``.

    A matching request always takes exactly two draws (slow spike, then kind), so a
    seeded run is reproducible whatever the outcome.

    Args:
        config: The fault settings.
        rng: The random source; seed it for a reproducible run.
        method: The HTTP method.
        path: The request path.
        injected: How many faults were injected so far (for ``limit``).

    Returns:
        The decision; ``kind="none"`` with zero delay for a request that does not match.
    """
    if not fault_applies(config, method, path):
        return FaultDecision()
    slow_roll, kind_roll = rng.random(), rng.random()
    delay = config.latency_seconds + (config.slow_seconds if slow_roll < config.slow_rate else 0.0)
    if config.limit is not None and injected >= config.limit:
        return FaultDecision("none", delay)
    threshold = 0.0
    kinds: tuple[tuple[FaultKind, float], ...] = (
        ("drop_before", config.drop_before_rate),
        ("error", config.error_rate),
        ("rate_limit", config.rate_limit_rate),
        ("drop_after", config.drop_after_rate),
    )
    for kind, rate in kinds:
        threshold += rate
        if kind_roll < threshold:
            return FaultDecision(kind, delay)
    return FaultDecision("none", delay)


class FaultController:
    """The live fault settings, their random source and the count of injected faults.

    Thread-safe: the server thread decides while a test thread may replace the settings.

    Example:
        >>> controller = FaultController(FaultConfig(drop_after_rate=1.0, seed=1))
        >>> controller.decide("PUT", "/v1/models/m/train").kind
        'drop_after'
        >>> controller.decide("GET", "/_emulator/health").kind
        'none'
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)
        self.injected = 0

    def replace(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the settings (or change some fields) and restart the random source and count."""
        with self._lock:
            base = config or FaultConfig()
            self.config = replace(base, **changes) if changes else base
            self._rng = random.Random(self.config.seed)
            self.injected = 0
            return self.config

    def decide(self, method: str, path: str) -> FaultDecision:
        """Decide the fault for one request and count it."""
        with self._lock:
            decision = decide_fault(self.config, self._rng, method=method, path=path, injected=self.injected)
            if decision.kind != "none":
                self.injected += 1
            return decision
