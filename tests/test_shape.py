"""The package stays readable: no module over 400 lines, no function over 60 lines of code.

Lines of code are what a reader reads through: blank lines, comments and docstrings are not counted.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import prefect_scenario

ROOT = Path(prefect_scenario.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_CODE_LINES = 60
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def _code_lines(source: str) -> set[int]:
    """The line numbers that hold code (not blank, not only a comment, not a docstring)."""
    lines: set[int] = set()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines - docstrings


def _long_functions(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    code = _code_lines(source)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            count = len([n for n in code if node.lineno <= n <= (node.end_lineno or node.lineno)])
            if count > MAX_FUNCTION_CODE_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count} lines of code)")
    return found


def test_the_code_line_counter_skips_docstrings_and_comments() -> None:
    source = 'def f():\n    """Doc.\n\n    More.\n    """\n    # why\n\n    return 1\n'
    assert _code_lines(source) == {1, 8}


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long


def test_no_function_is_over_60_lines_of_code() -> None:
    assert [f for p in sorted(ROOT.rglob("*.py")) for f in _long_functions(p)] == []
