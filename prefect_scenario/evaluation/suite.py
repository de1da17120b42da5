"""The evaluation suite: the fixed prompts, seeds and settings every candidate and its champion render.

A suite is versioned by its digest: two evaluations compare only renders of the same
digest, prompt and seed. The default suite is derived from the dataset (its captions,
or four generic prompts around the trigger word), so an evaluation needs nothing else.
One output per seed (``numOutputs: 1`` with an explicit ``seed``): Scenario does not
state how the seeds of several outputs are derived, so one request per seed is the only
way to compare two models on identical seeds.

Example:
    >>> suite = EvaluationSuite(prompts=("a knight in the rain",), seeds=(1, 2), trigger_word="KAEL_07")
    >>> [(p, s) for p, s in suite.items()]
    [('KAEL_07, a knight in the rain', 1), ('KAEL_07, a knight in the rain', 2)]
    >>> len(suite.digest), suite.digest == EvaluationSuite(prompts=("a knight in the rain",), seeds=(1, 2),
    ...                                                      trigger_word="KAEL_07").digest
    (16, True)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_SEEDS", "GENERIC_PROMPTS", "EvaluationSuite", "default_suite"]

DEFAULT_SEEDS = (1234,)
GENERIC_PROMPTS = (
    "a portrait, soft window light",
    "standing in a city street at night",
    "a close-up, plain studio background",
    "walking through a forest in autumn",
)
MAX_DEFAULT_PROMPTS = 4


class EvaluationSuite(BaseModel):
    """What a LoRA is judged on: prompts × seeds at one size and LoRA scale.

    ``trigger_word`` and ``caption_prefix`` are applied as the training applies them to
    captions (``prefix + caption``, unless the caption already starts with the trigger).
    ``reference_images`` (asset ids) are required for an edit LoRA.
    """

    model_config = ConfigDict(frozen=True)

    prompts: tuple[str, ...] = Field(min_length=1, description="The prompts every model renders.")
    seeds: tuple[int, ...] = Field(DEFAULT_SEEDS, min_length=1, description="One render per prompt and seed.")
    width: int = Field(1024, description="Render width in pixels (both sides are sent: there is no default).")
    height: int = Field(1024, description="Render height in pixels.")
    lora_scale: float = Field(1.0, description="The LoRA's scale (the bases accept 0 to 2).")
    num_inference_steps: int | None = Field(None, description="Steps; the base's default when None.")
    reference_images: tuple[str, ...] = Field((), description="Asset ids of source images, for edit LoRAs.")
    trigger_word: str | None = Field(None, description="Put in front of every prompt, as in the captions.")
    caption_prefix: str | None = Field(None, description="The training's caption prefix, applied the same way.")

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in value):
            raise ValueError("every prompt must be non-empty")
        return value

    @field_validator("lora_scale")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("lora_scale must be a finite number")
        return value

    @property
    def digest(self) -> str:
        """A short content hash: the suite's version."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def prompt_text(self, prompt: str) -> str:
        """``prompt`` with the caption prefix or trigger word applied, as the training's captions."""
        prefix = self.caption_prefix or (f"{self.trigger_word}, " if self.trigger_word else None)
        if not prefix or prompt.startswith(prefix.strip().rstrip(",;:").strip()):
            return prompt
        return prefix + prompt

    def items(self) -> list[tuple[str, int]]:
        """Every (prompt as sent, seed), in a fixed order."""
        return [(self.prompt_text(p), s) for p in self.prompts for s in self.seeds]


def default_suite(
    captions: Iterable[str] = (), *, trigger_word: str | None = None, reference_images: Iterable[str] = ()
) -> EvaluationSuite:
    """The suite used when none is given: up to four of the dataset's captions, else four generic prompts.

    The generic prompts carry the trigger word when there is one. Without captions or a trigger
    word they are still a fair comparison: both LoRAs render them on the same seeds at the same
    scale, and a LoRA changes every render it is applied to (the caller logs the fallback).

    Example:
        >>> default_suite(["a red fox", "a red fox", "a blue bird"]).prompts
        ('a red fox', 'a blue bird')
        >>> default_suite(trigger_word="KAEL_07").items()[0]
        ('KAEL_07, a portrait, soft window light', 1234)
    """
    chosen = tuple(dict.fromkeys(c.strip() for c in captions if c and c.strip()))[:MAX_DEFAULT_PROMPTS]
    return EvaluationSuite(
        prompts=chosen or GENERIC_PROMPTS, trigger_word=trigger_word, reference_images=tuple(reference_images)
    )
