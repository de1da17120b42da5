"""Reliability fixtures.

``tests/conftest.py`` sets ``PREFECT_SCENARIO_RETRY_DELAY_SCALE`` so the retry policy's own
waits (backoff, settle) shrink to milliseconds; ``Retry-After`` and a cooldown's
``remainingSeconds`` are still honoured as given (the 429 scenario asks for 10 ms).
"""
