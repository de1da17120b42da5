"""Request bodies for inline image uploads, streamed so an upload holds a few MB, not the image.

Scenario's add-training-image call takes the image inline as a ``data:`` URL in a JSON
body (scenario-sdk ``models.training_images.add``). The body is produced chunk by chunk,
base64-encoding the bytes (or a file read in chunks) as it goes.

Example:
    >>> import asyncio
    >>> body = StreamedBody.data_url_upload(name="a.png", data=b"abc", mime_type="image/png")
    >>> async def collect() -> bytes:
    ...     return b"".join([chunk async for chunk in body.stream()])
    >>> asyncio.run(collect())
    b'{"name": "a.png", "data": "data:image/png;base64,YWJj"}'
    >>> body.headers["Content-Length"]
    '55'
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["StreamedBody"]

_CHUNK = 3 * 1024 * 1024  # a multiple of 3: base64 chunks concatenate without padding


class StreamedBody:
    """A JSON body ``{"name": ..., "data": "data:<mime>;base64,<file>"}`` produced chunk by chunk."""

    def __init__(self, head: bytes, data: bytes | Path, tail: bytes) -> None:
        self.head, self.data, self.tail = head, data, tail
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        length = len(head) + 4 * ((size + 2) // 3) + len(tail)
        self.headers = {"Content-Type": "application/json", "Content-Length": str(length)}

    @classmethod
    def data_url_upload(cls, *, name: str, data: bytes | Path, mime_type: str) -> StreamedBody:
        head = f'{{"name": {json.dumps(name)}, "data": "data:{mime_type};base64,'.encode()
        return cls(head, data, b'"}')

    async def stream(self) -> AsyncIterator[bytes]:
        yield self.head
        if isinstance(self.data, bytes):
            view = memoryview(self.data)
            for start in range(0, len(view), _CHUNK):
                yield base64.b64encode(view[start : start + _CHUNK])
        else:
            with self.data.open("rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                    yield base64.b64encode(chunk)
        yield self.tail
