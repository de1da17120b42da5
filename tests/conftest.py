"""Shared fixtures. Each area keeps its fixtures in its own module, imported here."""

from __future__ import annotations

import os

# Telemetry can lock Prefect's SQLite database in tests (see shared/PREFECT-NOTES.md).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
