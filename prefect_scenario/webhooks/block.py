"""The webhook block: the Scenario endpoint a receiver answers for, and its secrets."""

from __future__ import annotations

import secrets

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr

from prefect_scenario._titles import field_title
from prefect_scenario.api.models import redact_url
from prefect_scenario.credentials import DOCUMENTATION_URL, LOGO_URL

__all__ = ["TRAINING_EVENTS", "ScenarioWebhook", "new_path_token"]

# The project events of a training (Scenario's SDK, `projects.webhook_endpoints`).
TRAINING_EVENTS = (
    "model.training.started",
    "model.training.completed",
    "model.training.failed",
    "model.training.cancelled",
)


def new_path_token() -> str:
    """A random, unguessable path segment (256 bits, URL-safe).

    Example:
        >>> len(new_path_token()) >= 43
        True
    """
    return secrets.token_urlsafe(32)


class ScenarioWebhook(Block):
    """A Scenario project webhook endpoint and what its receiver needs to answer it.

    ``prefect-scenario webhooks register --url URL`` creates the endpoint and saves this
    block; ``prefect-scenario webhook-receiver`` loads it. Scenario delivers to
    ``public_url`` followed by ``/`` and the secret ``path_token``: a delivery to any
    other path is refused before anything is read. The endpoint's signing ``secret``
    is kept for when Scenario documents its signature scheme; until then the receiver
    treats every delivery as a hint (it re-reads the model over the authenticated API),
    so it never needs to unwrap it. Both secrets are ``SecretStr``: stored encrypted,
    shown as ``**********``.

    Example:
        Load a saved webhook:
        ```python
        from prefect_scenario import ScenarioWebhook

        webhook = ScenarioWebhook.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Scenario Webhook"
    _block_type_slug = "scenario-webhook"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]
    _description = "A Scenario webhook endpoint for training events, and the secrets its receiver checks."
    model_config = ConfigDict(field_title_generator=field_title)

    endpoint_id: str = Field(description="The id Scenario gave the webhook endpoint.")
    public_url: str = Field(
        description="The receiver's public URL, without the path token (Scenario delivers to this URL plus the token)."
    )
    path_token: SecretStr = Field(description="The random last path segment Scenario delivers to; a secret.")
    secret: SecretStr = Field(description="The signing secret Scenario returned once, when the endpoint was created.")
    events: list[str] = Field(
        default_factory=lambda: list(TRAINING_EVENTS), description="The events the endpoint subscribes to."
    )
    project_id: str = Field(default="", description="The Scenario project the endpoint belongs to.")

    def endpoint_url(self) -> str:
        """The URL Scenario delivers to: ``public_url``, ``/``, the path token. Never log it.

        Example:
            >>> hook = ScenarioWebhook(endpoint_id="e", public_url="https://h.example/scenario/",
            ...     path_token="t0k3n", secret="s")
            >>> hook.endpoint_url()
            'https://h.example/scenario/t0k3n'
        """
        return f"{self.public_url.rstrip('/')}/{self._token()}"

    def redacted_url(self) -> str:
        """The endpoint URL with the token masked, for logs and the terminal."""
        return redact_url(self.endpoint_url())

    def _token(self) -> str:
        # The one place the path token is unwrapped: the URL registered with Scenario and
        # the path the receiver compares against are both built from here.
        return self.path_token.get_secret_value()
