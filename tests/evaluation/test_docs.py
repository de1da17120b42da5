"""docs/evaluation.md has Python to run; tests/test_readme.py runs every block of it against the
emulator, as a reader would, and checks the production model it prints."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "evaluation.md").read_text(), flags=re.S)


def test_the_page_has_a_python_block() -> None:
    assert BLOCKS
