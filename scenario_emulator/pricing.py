"""The creative-units cost of a training: deterministic, so tests can reason about it.

Scenario's pricing is not stated. The trigger answer carries ``creativeUnitsCost``,
``creativeUnitsDiscount`` and ``costDetails`` (SDK ``TrainTriggerResponse``; a dry run's
269 answer has these fields only, as Scenario's blender plugin captured). The emulator
charges::

    50 + 10 × (images + 2 × pairs) + 2 × nb_epochs

a base, each dataset image (a pair counts twice), and each epoch: 5 images at the
default 10 epochs cost 120. The same number is the job's ``billing.cuCost``.

Example:
    >>> cost_fields(training_cost(images=5, pairs=0, nb_epochs=10))
    {'creativeUnitsCost': 120.0, 'creativeUnitsDiscount': 0, 'costDetails': {'train-model': 120.0}}
"""

from __future__ import annotations

from typing import Any

__all__ = ["cost_fields", "training_cost"]


def training_cost(*, images: int, pairs: int, nb_epochs: int) -> float:
    """The emulator's creative-units cost of a training (see the module docstring)."""
    return float(50 + 10 * (images + 2 * pairs) + 2 * nb_epochs)


def cost_fields(cost: float) -> dict[str, Any]:
    """The cost fields of a trigger or dry-run answer; ``costDetails`` sums to the cost."""
    return {"creativeUnitsCost": cost, "creativeUnitsDiscount": 0, "costDetails": {"train-model": cost}}
