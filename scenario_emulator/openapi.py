"""The emulator's own OpenAPI 3.0 description of the ``/v1`` routes it serves.

The document is ``openapi.json``, shipped with the package and served at
``GET /_emulator/openapi.json``. It describes what *the emulator* accepts and
answers, status codes included, so that a schema-driven fuzzer (schemathesis, in
the reliability tests) can check that every answer is one the description allows
and that none is a 500. It is not the real API's schema: where Scenario is silent
the emulator's own choices are written down (see the route modules' docstrings).

An empty body reads as ``{}``. Fields the emulator reads as absent when they are
``null`` (lists, ``concepts``, ``parameters``) are marked ``nullable``. Every ``/v1``
operation needs Basic auth and may answer 401; every operation that reads a JSON body
may answer 413 (too large), 415 (not JSON) and 400 (malformed). Error bodies are
``{"reason", "traceId"}`` (see :mod:`.errors`). Injected faults (429, 5xx, dropped
connections) are not part of the description: fuzz with faults off. The training
type enum is the catalog's (a test checks they agree).

Example:
    >>> spec = openapi_schema()
    >>> spec["openapi"], "/models/{modelId}/train" in spec["paths"]
    ('3.0.3', True)
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from scenario_emulator.openapi_render import json_document, render_paths

__all__ = ["openapi_schema"]


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    document = json_document()
    document["paths"].update(render_paths(document))
    return document


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of the emulator's ``/v1`` routes, relative to ``/v1`` (a fresh copy)."""
    return copy.deepcopy(_document())
