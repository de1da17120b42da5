"""Field titles for the blocks' forms in the Prefect UI: sentence case, acronyms kept.

Pydantic titles a field from its name word by word (``api_key`` → "Api Key"); Prefect's block
forms show that title. Every block of the package sets this generator in its ``model_config``.

Example:
    >>> field_title("api_key", None), field_title("previous_model_ids", None)
    ('API key', 'Previous model IDs')
"""

from __future__ import annotations

from typing import Any

__all__ = ["field_title"]

_ACRONYMS = {"api": "API", "aws": "AWS", "url": "URL", "id": "ID", "ids": "IDs", "s3": "S3"}


def field_title(name: str, info: Any) -> str:
    """The title of field ``name``: its words in sentence case, acronyms in capitals."""
    words = [_ACRONYMS.get(word, word) for word in name.split("_") if word]
    if words and words[0] not in _ACRONYMS.values():
        words[0] = words[0].capitalize()
    return " ".join(words)
