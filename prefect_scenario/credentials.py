"""The credentials block: how a flow reaches Scenario's API."""

from __future__ import annotations

import os
from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from pydantic import ConfigDict, Field, SecretStr, ValidationError

from prefect_scenario._titles import field_title
from prefect_scenario.api.client import DEFAULT_BASE_URL, ScenarioClient
from prefect_scenario.api.http import check_settings
from prefect_scenario.api.retry_policy import DEFAULT_MAX_RETRIES
from prefect_scenario.exceptions import ConfigurationError

__all__ = ["ScenarioCredentials", "resolve_aws_credentials", "resolve_credentials"]

# No logo: the blocks' card shows Prefect's own placeholder rather than a broken image. A logo
# URL is set here once the project has a public home that serves docs/logo.png (a 64 px square).
LOGO_URL: str | None = None
DOCUMENTATION_URL = "https://github.com/prefect-scenario/prefect-scenario#readme"


class ScenarioCredentials(CredentialsBlock):
    """Credentials for Scenario's API: an API key and secret, the project and the API root.

    The key and secret are ``SecretStr``: they are stored encrypted by Prefect, shown as
    ``**********``, and unwrapped only when :meth:`get_client` builds the client.
    Point ``base_url`` at ``prefect-scenario emulator`` to work offline.

    Example:
        Load stored credentials and train:
        ```python
        from prefect_scenario import ScenarioCredentials

        credentials = ScenarioCredentials.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Scenario Credentials"
    _block_type_slug = "scenario-credentials"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]
    _description = "Credentials for Scenario's LoRA training API (API key, secret, project)."
    model_config = ConfigDict(field_title_generator=field_title)

    api_key: SecretStr = Field(description="The Scenario API key.")
    api_secret: SecretStr = Field(description="The Scenario API secret.")
    project_id: str = Field(description="The Scenario project that owns the models.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="The API root including /v1; plain http is allowed only for a loopback host.",
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for an answer to one request.")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for a connection.")
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        le=10,
        description="Retries of a transient failure per request; each retry is logged in the run.",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ScenarioCredentials:
        """Credentials from ``SCENARIO_API_KEY``, ``SCENARIO_API_SECRET``, ``SCENARIO_PROJECT_ID``
        and, optionally, ``SCENARIO_BASE_URL``.

        Raises:
            ConfigurationError: a required variable is missing or empty.

        Example:
            >>> ScenarioCredentials.from_env({"SCENARIO_API_KEY": "k", "SCENARIO_API_SECRET": "s",
            ...     "SCENARIO_PROJECT_ID": "p"}).base_url
            'https://api.cloud.scenario.com/v1'
        """
        env = os.environ if environ is None else environ
        missing = [
            name
            for name in ("SCENARIO_API_KEY", "SCENARIO_API_SECRET", "SCENARIO_PROJECT_ID")
            if not env.get(name, "").strip()
        ]
        if missing:
            raise ConfigurationError(f"set the environment variable(s) {', '.join(missing)} to use Scenario")
        return cls(
            api_key=SecretStr(env["SCENARIO_API_KEY"]),
            api_secret=SecretStr(env["SCENARIO_API_SECRET"]),
            project_id=env["SCENARIO_PROJECT_ID"],
            base_url=env.get("SCENARIO_BASE_URL") or DEFAULT_BASE_URL,
        )

    def check(self) -> None:
        """Refuse unusable settings before any request.

        Raises:
            ConfigurationError: an empty key, secret or project, or an unsafe base URL.
        """
        # The client's own checks, without opening a client that would need closing.
        check_settings(
            api_key=self.api_key, api_secret=self.api_secret, project_id=self.project_id, base_url=self.base_url
        )

    def get_client(self, **overrides: Any) -> ScenarioClient:
        """A :class:`ScenarioClient` for these credentials (use it as an async context manager).

        Example:
            >>> creds = ScenarioCredentials(api_key="k", api_secret="s", project_id="p")
            >>> creds.get_client().project_id
            'p'
        """
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "connect_timeout": self.connect_timeout,
            "max_retries": self.max_retries,
            **overrides,
        }
        return ScenarioClient(api_key=self.api_key, api_secret=self.api_secret, project_id=self.project_id, **options)


async def resolve_credentials(value: ScenarioCredentials | str | None) -> ScenarioCredentials:
    """A credentials block given as itself, by saved block name, or (None) from the environment.

    Raises:
        ConfigurationError: the credentials are missing or unusable.
    """
    if isinstance(value, ScenarioCredentials):
        credentials = value
    elif isinstance(value, str):
        if not value.strip():
            raise ConfigurationError("--block needs the name of a saved ScenarioCredentials block")
        try:
            loaded = await ScenarioCredentials.aload(value)
        except ValidationError as exc:  # never its text: the input holds the secrets
            raise ConfigurationError(
                f"the ScenarioCredentials block {value!r} does not validate ({exc.error_count()} error(s))"
            ) from None
        except ValueError:  # Prefect: "Unable to find block document named ..."
            raise ConfigurationError(f"no ScenarioCredentials block named {value!r}") from None
        if not isinstance(loaded, ScenarioCredentials):
            raise ConfigurationError(f"block {value!r} is not a ScenarioCredentials block")
        credentials = loaded
    else:
        credentials = ScenarioCredentials.from_env()
    credentials.check()
    return credentials


async def resolve_aws_credentials(value: Any) -> Any:
    """A prefect-aws ``AwsCredentials`` given as itself, by saved block name, or None (the AWS environment)."""
    from prefect_aws import AwsCredentials

    if isinstance(value, str):
        return await AwsCredentials.aload(value)
    if value is None:
        return AwsCredentials()
    return value
