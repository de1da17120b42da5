"""The text a LoRA learns from: image captions (``<image stem>.txt``) and edit instructions.

Scenario trains on each training image's asset ``description`` (falling back to its
automatic caption), so a caption written next to an image is the most direct say a
dataset has over what the LoRA learns. The file convention is kohya_ss's and
ai-toolkit's: ``hero-01.png`` is captioned by ``hero-01.txt`` beside it, in UTF-8.
An edit pair's instruction plays that part for an edit LoRA; pairs are the lines of a
``pairs.jsonl`` (the convention of :mod:`prefect_scenario.dataset.layout`).

A caption is refused, with an error naming its file, when it is not UTF-8 text, is
empty (only whitespace), or is longer than :data:`MAX_CAPTION_CHARS`.

Example:
    >>> parse_caption("KAEL_07, a knight in silver armour\\n".encode(), source="01.txt")
    'KAEL_07, a knight in silver armour'
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from prefect_scenario.dataset.checks import Finding
from prefect_scenario.exceptions import InvalidDatasetError, InvalidInputError
from prefect_scenario.validation import check_text, read_bounded

__all__ = [
    "CAPTION_SUFFIX",
    "MAX_CAPTION_CHARS",
    "MAX_CAPTION_FILE_BYTES",
    "MAX_PAIRS_FILE_BYTES",
    "Pair",
    "apply_caption_prefix",
    "caption_beside",
    "caption_name",
    "check_caption",
    "parse_caption",
    "parse_pairs_jsonl",
    "read_bounded_text_file",
    "read_caption",
]

CAPTION_SUFFIX = ".txt"
# Not stated by the API. 2,000 characters is about 500 tokens: beyond what the T5 text
# encoder of FLUX reads (512 tokens), and far beyond a useful caption; a longer file is
# almost always something pasted by mistake.
MAX_CAPTION_CHARS = 2000
# A caption file is read only up to this: 2,000 characters of UTF-8 take at most 8,000 bytes.
MAX_CAPTION_FILE_BYTES = 16 * 1024
# 25 pairs of two names and an instruction fit in a few KB; anything near this is not a pairs file.
MAX_PAIRS_FILE_BYTES = 1024 * 1024
Pair = tuple[str, str, str]  # (before name, after name, instruction)


def caption_name(image_name: str) -> str:
    """The caption file's name (or key) for an image's: the same stem, ``.txt``.

    Example:
        >>> caption_name("poses/hero-01.PNG")
        'poses/hero-01.txt'
    """
    return str(PurePosixPath(image_name).with_suffix(CAPTION_SUFFIX))


def check_caption(text: str, *, source: str) -> str:
    """The caption, stripped of surrounding whitespace, if it is usable.

    Args:
        text: The caption.
        source: What to name in an error: the caption file, or the image it belongs to.

    Returns:
        The stripped caption.

    Raises:
        InvalidDatasetError: the caption is empty, longer than :data:`MAX_CAPTION_CHARS`, or
            holds a control character (NUL, an ANSI escape; line breaks and tabs are allowed).

    Example:
        >>> check_caption("  a red fox  ", source="fox.txt")
        'a red fox'
    """
    if not isinstance(text, str):
        raise InvalidDatasetError(f"{source}: the caption must be text, got {type(text).__name__}")
    caption = text.strip()
    if not caption:
        raise InvalidDatasetError(f"{source}: the caption is empty; write one or delete the file")
    if len(caption) > MAX_CAPTION_CHARS:
        raise InvalidDatasetError(
            f"{source}: the caption is {len(caption):,} characters long; at most {MAX_CAPTION_CHARS:,} are allowed"
        )
    try:
        return check_text("the caption", caption, max_length=MAX_CAPTION_CHARS, allow_newlines=True)
    except InvalidInputError as exc:
        raise InvalidDatasetError(f"{source}: {exc}") from None


def read_bounded_text_file(path: str | Path, limit: int, *, what: str) -> bytes:
    """A local caption or pairs file's bytes, refused unread when over ``limit`` or not a regular file.

    Raises:
        InvalidDatasetError: not a regular file, or over ``limit``.
    """
    try:
        return read_bounded(path, limit, what=what)
    except InvalidInputError as exc:
        raise InvalidDatasetError(str(exc)) from None


def parse_caption(data: bytes, *, source: str) -> str:
    """Decode a caption file's bytes (UTF-8, a byte-order mark allowed) and check it.

    Args:
        data: The file's content.
        source: The caption file, named in errors.

    Returns:
        The stripped caption.

    Raises:
        InvalidDatasetError: not UTF-8, empty, or too long.

    Example:
        >>> parse_caption(b"\\xef\\xbb\\xbfa fox", source="fox.txt")
        'a fox'
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDatasetError(
            f"{source}: the caption is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    return check_caption(text, source=source)


def read_caption(image_path: str | Path) -> str | None:
    """The caption in the ``.txt`` file beside a local image, or None when there is none.

    Raises:
        InvalidDatasetError: the caption file is not UTF-8, is empty, or is too long.

    Example:
        >>> read_caption("/nonexistent/hero-01.png") is None
        True
    """
    path = Path(image_path).with_suffix(CAPTION_SUFFIX)
    if not path.is_file():
        return None
    return parse_caption(
        read_bounded_text_file(path, MAX_CAPTION_FILE_BYTES, what="the caption file"), source=str(path)
    )


def apply_caption_prefix(caption: str, prefix: str | None, *, source: str) -> str:
    """``prefix + caption`` (unless the caption starts with it already), checked again.

    Example:
        >>> apply_caption_prefix("a knight", "KAEL_07, ", source="01.txt")
        'KAEL_07, a knight'
        >>> apply_caption_prefix("KAEL_07 in the rain", "KAEL_07, ", source="01.txt")
        'KAEL_07 in the rain'
    """
    # The prefix's trigger word already leads the caption: prefixing again would repeat it.
    if not prefix or caption.startswith(prefix.strip().rstrip(",;:").strip()):
        return caption
    return check_caption(prefix + caption, source=source)


def caption_beside(source: str | Path | bytes, s3_client: Any = None) -> str | None:
    """The caption in the ``.txt`` beside a local or ``s3://`` image, or None when there is none.

    Raises:
        InvalidDatasetError: the caption file is not UTF-8, is empty, is too long, or S3
            refused to read it (other than "no such key").

    Example:
        >>> caption_beside(b"raw bytes have no file beside them") is None
        True
    """
    if isinstance(source, bytes):
        return None
    if isinstance(source, str) and source.startswith("s3://"):
        bucket, _, key = source[len("s3://") :].partition("/")
        return _download_caption(s3_client, bucket, caption_name(key))
    return read_caption(source)


def _download_caption(s3_client: Any, bucket: str, key: str) -> str | None:
    from botocore.exceptions import ClientError

    uri = f"s3://{bucket}/{key}"
    try:
        body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_CAPTION_FILE_BYTES + 1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise InvalidDatasetError(f"{uri}: cannot read the caption from S3 ({code})") from None
    if len(body) > MAX_CAPTION_FILE_BYTES:
        raise InvalidDatasetError(f"{uri}: the caption file is over {MAX_CAPTION_FILE_BYTES:,} bytes")
    return parse_caption(body, source=uri)


def parse_pairs_jsonl(data: bytes, *, source: str) -> tuple[list[Pair], list[Finding]]:
    """The pairs of a ``pairs.jsonl`` and a refusal for each line that is not a pair.

    An empty instruction is kept: the ``instruction`` check reports it.

    Example:
        >>> parse_pairs_jsonl(b'{"before": "b.png", "after": "a.png", "instruction": "snow"}\\n', source="p")
        ([('b.png', 'a.png', 'snow')], [])
    """
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        return [], [Finding("refuse", "pairs", "not UTF-8 text", source)]
    pairs: list[Pair] = []
    findings: list[Finding] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            findings.append(Finding("refuse", "pairs", f"line {number}: invalid JSON: {exc.msg}", source))
            continue
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("before", "after")):
            findings.append(Finding("refuse", "pairs", f"line {number}: needs a before and an after", source))
            continue
        pairs.append((item["before"], item["after"], str(item.get("instruction") or "")))
    return pairs, findings
