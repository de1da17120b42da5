"""Tests of the Scenario API emulator (``scenario_emulator``), by concern."""
