"""Shared fixtures. Each area keeps its fixtures in its own module, imported here."""

from __future__ import annotations

import os

# Telemetry can lock Prefect's SQLite database in tests (see shared/PREFECT-NOTES.md).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A busy 2-core machine (two test runs at once) can take minutes to start a server.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "240")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

from tests.emulator_fixtures import *  # noqa: F403
from tests.flow_fixtures import *  # noqa: F403
from tests.s3_fixtures import *  # noqa: F403
