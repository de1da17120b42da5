"""The paths of the API's resources, built from ids that cannot leave them.

Every id is matched against its shape first (:mod:`prefect_scenario.validation`), so a
refused id sends nothing, then percent-encoded as one path segment, so even an id that
passes can never add a segment (``/``), a query (``?``) or a fragment (``#``).

Example:
    >>> model_path("model_GTrL3mq4SXWyMxkOHRxlpw")
    '/models/model_GTrL3mq4SXWyMxkOHRxlpw'
    >>> model_path("../../teams/x")
    Traceback (most recent call last):
    ...
    prefect_scenario.exceptions.InvalidIdError: '../../teams/x' is not a model id: expected model_ and \
letters, digits, '_' or '-' (at most 100 characters)
"""

from __future__ import annotations

from prefect_scenario.validation import asset_id, job_id, model_id, opaque_id, path_segment

__all__ = ["asset_segment", "endpoint_segment", "job_segment", "model_path", "opaque_segment"]


def model_path(value: str) -> str:
    """``/models/{id}``: where every model path starts."""
    return f"/models/{path_segment(model_id(value))}"


def asset_segment(value: str) -> str:
    """An asset id (a training image's id is one) as a path segment."""
    return path_segment(asset_id(value))


def job_segment(value: str) -> str:
    """A job id as a path segment."""
    return path_segment(job_id(value))


def endpoint_segment(value: str) -> str:
    """A webhook endpoint id (shape not stated by the reference) as a path segment."""
    return path_segment(opaque_id("endpoint_id", value))


def opaque_segment(kind: str, value: str) -> str:
    """An id whose shape the reference does not state (a base model, a collection, a project)."""
    return path_segment(opaque_id(kind, value))
