"""Reliability fixtures.

The root ``conftest.py`` shrinks the retry policy's own backoff to milliseconds; ``Retry-After`` and a cooldown's
``remainingSeconds`` are still honoured as given (the 429 scenario asks for 10 ms).
"""
