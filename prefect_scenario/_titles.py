"""Field titles for the blocks' forms in the Prefect UI: sentence case, acronyms kept.

Pydantic titles a field from its name word by word (``api_key`` → "Api Key"); Prefect's block
forms show that title. Every block of the package sets this generator in its ``model_config``.

Example:
    >>> field_title("api_key", None), field_title("previous_model_ids", None)
    ('API key', 'Previous model IDs')
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["field_title", "wire_field_title"]

_ACRONYMS = {"wandb": "W&B", "api": "API", "aws": "AWS", "url": "URL", "id": "ID", "ids": "IDs", "s3": "S3"}


def field_title(name: str, info: Any) -> str:
    """The title of field ``name``: its words in sentence case, acronyms in capitals."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    words = [_ACRONYMS.get(word, word) for word in snake.split("_") if word]
    if words and words[0] not in _ACRONYMS.values():
        words[0] = words[0].capitalize()
    return " ".join(words)


def wire_field_title(name: str, info: Any) -> str:
    """The title of a field sent under another name: its title, then the API's name for it.

    Example:
        >>> from pydantic.fields import FieldInfo
        >>> wire_field_title("nb_epochs", FieldInfo(alias="nbEpochs")), wire_field_title("wandbKey", FieldInfo())
        ('Nb epochs (nbEpochs)', 'W&B key (wandbKey)')
    """
    wire = getattr(info, "alias", None) or name
    title = field_title(name, info)
    return f"{title} ({wire})" if "_" not in wire and wire != wire.lower() else title
