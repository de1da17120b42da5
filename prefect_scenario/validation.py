"""The checks every entry point shares: finite numbers, clean names, ids that stay in their path, bounded reads.

The flows, the blocks and the command line call the same functions, so a value refused
by one is refused by all, with the same one-line message, before any request is sent.
Each raises a subclass of :class:`~prefect_scenario.exceptions.InvalidInputError` (the
command line exits 2 on those).

- Numbers (:func:`finite`, :func:`positive_seconds`, :func:`positive_int`): a boolean is
  not a number, NaN and infinities are refused, a range is checked.
- Text (:func:`clean_name`, :func:`check_text`): stripped, not empty, no control
  character (a newline or an ANSI escape in a name would rewrite a terminal line or a log
  line); :func:`escape_for_terminal` shows text that came from elsewhere safely.
- Ids (:func:`model_id`, :func:`asset_id`, :func:`job_id`, :func:`opaque_id`): matched
  against the shape the API reference shows (``model_…``, ``asset_…``, ``job_…``: letters,
  digits, ``_`` and ``-``), and :func:`path_segment` percent-encodes one segment, so no id
  can leave ``/models/{id}`` or add a query string.
- Files (:func:`read_bounded`, :func:`load_json_bounded`): stat before read, a regular
  file only (never a device, FIFO or folder), at most ``limit`` bytes read; JSON nested
  at most :data:`MAX_JSON_DEPTH` levels.

Example:
    >>> finite("--timeout", 60, minimum=0, allow_zero=False)
    60.0
    >>> clean_name("--name", "  hero  ")
    'hero'
    >>> path_segment(model_id("model_GTrL3mq4SXWyMxkOHRxlpw"))
    'model_GTrL3mq4SXWyMxkOHRxlpw'
    >>> escape_for_terminal("hero\\x1b[2J")
    'hero\\\\x1b[2J'
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prefect_scenario.exceptions import InvalidIdError, InvalidInputError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_NAME_LENGTH",
    "MAX_PARAMS_FILE_BYTES",
    "MAX_SECONDS",
    "asset_id",
    "check_text",
    "clean_name",
    "escape_for_terminal",
    "finite",
    "job_id",
    "load_json_bounded",
    "model_id",
    "opaque_id",
    "optional_finite",
    "path_segment",
    "positive_int",
    "positive_seconds",
    "read_bounded",
]

# Not stated by the API. A model name is a label in a list: 200 characters is generous.
MAX_NAME_LENGTH = 200
# The webhook receiver's bound for a model id; the reference's ids are 20-30 characters.
MAX_ID_LENGTH = 100
# A year: longer than any training, and far from the float range where a deadline overflows.
MAX_SECONDS = 366 * 24 * 3600.0
MAX_PARAMS_FILE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
# Letters, digits, "_" and "-": what the reference shows after the prefix (model_bfl-flux-2-dev,
# asset_before_01, model_CMUu7BjxV8TpdhG3FKoxZRxC).
_ID_BODY = re.compile(r"[A-Za-z0-9_-]+")
# Characters that break out of a path segment or a URL, for ids whose shape is not stated.
_PATH_BREAKING = frozenset("/\\?#%&;=+\"'<>`{}|^[] ")
# Bidirectional overrides and isolates reorder what a terminal shows (trojan-source).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _is_control(char: str, *, allow_newlines: bool = False) -> bool:
    if allow_newlines and char in "\t\n\r":
        return False
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI or char in "\u2028\u2029"


def finite(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_zero: bool = True,
) -> float:
    """``value`` as a finite float within ``[minimum, maximum]``.

    Raises:
        InvalidInputError: a boolean, not a number, NaN or an infinity, out of range, or
            zero when ``allow_zero`` is False.

    Example:
        >>> finite("min_dataset_score", 0.5, minimum=0, maximum=1)
        0.5
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    if not allow_zero and number == 0:
        raise InvalidInputError(f"{name} must not be 0")
    if minimum is not None and number < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum:g}, got {number:g}")
    if maximum is not None and number > maximum:
        raise InvalidInputError(f"{name} must be at most {maximum:g}, got {number:g}")
    return number


def optional_finite(name: str, value: object, **bounds: Any) -> float | None:
    """None, or :func:`finite` of ``value``."""
    return None if value is None else finite(name, value, **bounds)


def positive_seconds(name: str, value: object, *, maximum: float = MAX_SECONDS) -> float:
    """A duration in seconds: finite, above 0, at most ``maximum`` (a year by default).

    Example:
        >>> positive_seconds("timeout_seconds", float("nan"))
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.InvalidInputError: timeout_seconds must be a finite number, got nan
    """
    seconds = finite(name, value, maximum=maximum)
    if seconds <= 0:
        raise InvalidInputError(f"{name} must be above 0 seconds, got {seconds:g}")
    return seconds


def positive_int(name: str, value: object, *, maximum: int | None = None) -> int:
    """A whole number from 1 to ``maximum`` (a boolean or a fractional float is refused).

    Example:
        >>> positive_int("upload_concurrency", 4, maximum=16)
        4
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if value < 1 or (maximum is not None and value > maximum):
        upper = f" to {maximum}" if maximum is not None else " or more"
        raise InvalidInputError(f"{name} must be 1{upper}, got {value}")
    return value


def check_text(name: str, value: object, *, max_length: int, allow_newlines: bool = False) -> str:
    """``value`` stripped, if it is a non-empty string of at most ``max_length`` without control characters.

    Tabs and line breaks are allowed only with ``allow_newlines`` (a caption's lines).
    The message never repeats the text: it may be what a terminal must not print.

    Raises:
        InvalidInputError: not a string, empty or only whitespace, too long, or holding
            a control character (NUL, an ANSI escape, a bidirectional override ...).
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise InvalidInputError(f"{name} must not be empty")
    if len(text) > max_length:
        raise InvalidInputError(f"{name} is {len(text):,} characters long; at most {max_length:,} are allowed")
    bad = next((c for c in text if _is_control(c, allow_newlines=allow_newlines)), None)
    if bad is not None:
        raise InvalidInputError(f"{name} must not hold control characters (found U+{ord(bad):04X})")
    return text


def clean_name(name: str, value: object, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A name: stripped, not empty, one line without control characters, at most ``max_length``.

    Example:
        >>> clean_name("--name", "hero\\n")
        'hero'
        >>> clean_name("--name", "a\\nb")
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.InvalidInputError: --name must not hold control characters (found U+000A)
    """
    return check_text(name, value, max_length=max_length)


def escape_for_terminal(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``), safe to print.

    Example:
        >>> escape_for_terminal("line\\nbreak")
        'line\\\\nbreak'
    """
    if not any(_is_control(c) or c == "\\" for c in text):
        return text
    return "".join(repr(c)[1:-1] if _is_control(c) else c for c in text)


def _shaped(kind: str, prefix: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidIdError(f"a {kind} id must be text, got {type(value).__name__}")
    body = value[len(prefix) :]
    if not value.startswith(prefix) or len(value) > MAX_ID_LENGTH or not _ID_BODY.fullmatch(body):
        shown = escape_for_terminal(value[:40]) + ("..." if len(value) > 40 else "")
        raise InvalidIdError(
            f"{shown!r} is not a {kind} id: expected {prefix} and letters, digits, '_' or '-' "
            f"(at most {MAX_ID_LENGTH} characters)"
        )
    return value


def model_id(value: object) -> str:
    """``value`` if it has a model id's shape (``model_…``).

    Raises:
        InvalidIdError: it does not; e.g. ``../../teams/x`` or ``model_x?projectId=other``.

    Example:
        >>> model_id("model_x?projectId=other")
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.InvalidIdError: 'model_x?projectId=other' is not a model id: expected \
model_ and letters, digits, '_' or '-' (at most 100 characters)
    """
    return _shaped("model", "model_", value)


def asset_id(value: object) -> str:
    """``value`` if it has an asset id's shape (``asset_…``; a training image's id is one)."""
    return _shaped("asset", "asset_", value)


def job_id(value: object) -> str:
    """``value`` if it has a job id's shape (``job_…``)."""
    return _shaped("job", "job_", value)


def opaque_id(kind: str, value: object) -> str:
    """An id whose shape the reference does not state (a webhook endpoint's): no path-breaking character.

    Raises:
        InvalidIdError: empty, ``.`` or ``..``, too long, or holding ``/``, ``?``, ``#``,
            ``%``, whitespace or a control character.
    """
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise InvalidIdError(f"{kind} must be an id")
    if len(value) > MAX_ID_LENGTH or any(c in _PATH_BREAKING or c.isspace() or _is_control(c) for c in value):
        raise InvalidIdError(f"{kind} must be an id without '/', '?', '#', '%' or spaces")
    return value


def path_segment(value: str) -> str:
    """``value`` percent-encoded as one URL path segment (``/``, ``?`` and ``%`` included).

    Example:
        >>> path_segment("a/b?c")
        'a%2Fb%3Fc'
    """
    return quote(value, safe="")


def read_bounded(
    path: str | Path, limit: int, *, what: str = "the file", error: type[InvalidInputError] = InvalidInputError
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without ever holding more.

    The file is opened without blocking (a FIFO cannot hang it), checked with ``fstat``
    (a device, FIFO or folder is refused without a read, as is a file already over the
    limit), then read up to ``limit + 1`` bytes, so a file that grows meanwhile is refused too.

    Raises:
        InvalidInputError (or ``error``): no such file, not a regular file, or over ``limit``.
    """
    where = str(path)
    try:
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as exc:
        raise error(f"{where}: cannot open {what} ({exc.strerror or type(exc).__name__})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{where}: {what} must be a regular file, not a {_kind(info.st_mode)}")
        if info.st_size > limit:
            raise error(f"{where}: {what} is {_size(info.st_size)}, over the {_size(limit)} limit")
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{where}: {what} is over the {_size(limit)} limit")
    return data


def _read_at_most(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "socket" if stat.S_ISSOCK(mode) else "special file"


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB" if count >= 1024 * 1024 else f"{count:,} bytes"


def load_json_bounded(text: str | bytes, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` once its nesting is known to be at most ``max_depth`` levels.

    Raises:
        InvalidInputError: not UTF-8, invalid JSON, or nested deeper than ``max_depth``.

    Example:
        >>> load_json_bounded("[" * 40 + "]" * 40, what="--params-file")
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.InvalidInputError: --params-file is nested more than 32 levels deep
    """
    try:
        source = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    except UnicodeDecodeError:
        raise InvalidInputError(f"{what} is not UTF-8 text") from None
    if _json_depth(source) > max_depth:
        raise InvalidInputError(f"{what} is nested more than {max_depth} levels deep")
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} is not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _json_depth(source: str) -> int:
    """The deepest bracket nesting outside strings: what ``json.loads`` would recurse into."""
    depth = deepest = 0
    in_string = escaped = False
    for char in source:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
