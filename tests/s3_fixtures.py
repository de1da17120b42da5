"""S3 and SQS for tests: one moto server per session, reset before each test that uses it.

The server is real HTTP on 127.0.0.1 (``ThreadedMotoServer``), so boto3 goes through
sockets, signing and XML parsing exactly as it would against AWS. ``POST
/moto-api/reset`` wipes it between tests in milliseconds.
"""

from __future__ import annotations

import logging
import struct
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

__all__ = [
    "REGION",
    "aws_client",
    "count_requests",
    "make_bucket",
    "moto_endpoint",
    "moto_server",
    "notify_queue",
    "png_bytes",
    "put_many",
    "put_png",
    "s3_client",
    "sqs_client",
]

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server running for the whole session."""
    # werkzeug logs every request at INFO: thousands of lines in the pagination test.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str) -> str:
    """The moto server's endpoint, emptied for this test."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return moto_server


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client for ``service`` pointed at ``endpoint`` with throwaway credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """A boto3 S3 client on an empty moto server."""
    return aws_client("s3", moto_endpoint)


@pytest.fixture
def sqs_client(moto_endpoint: str) -> Any:
    """A boto3 SQS client on the same (empty) moto server."""
    return aws_client("sqs", moto_endpoint)


def count_requests(client: Any) -> Counter[str]:
    """Count the API calls ``client`` makes, by operation, as botocore sends them.

    An independent check on the counts the discovery code reports about itself.
    """
    counts: Counter[str] = Counter()

    def _count(model: Any, **_: Any) -> None:
        counts[model.name] += 1

    client.meta.events.register("before-call.*.*", _count)
    return counts


def png_bytes(seed: int = 0) -> bytes:
    """A valid 1×1 PNG whose colour (and so whose ETag) depends on ``seed`` (< 2**24)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = b"\x00" + (seed % (1 << 24)).to_bytes(3, "big")
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b"")


def make_bucket(s3: Any, name: str = "studio-assets") -> str:
    """Create a bucket; return its name."""
    s3.create_bucket(Bucket=name)
    return name


def put_png(s3: Any, bucket: str, key: str, seed: int = 0) -> str:
    """Upload a small PNG; return its (unquoted) ETag."""
    response = s3.put_object(Bucket=bucket, Key=key, Body=png_bytes(seed), ContentType="image/png")
    return str(response["ETag"]).strip('"')


def put_many(s3: Any, bucket: str, objects: Mapping[str, bytes] | Iterable[str], *, threads: int = 8) -> None:
    """Upload many objects in parallel (keys alone get distinct PNGs).

    moto takes ~200 sequential puts a second; a few threads roughly double that.
    """
    items = (
        list(objects.items())
        if isinstance(objects, Mapping)
        else [(key, png_bytes(i)) for i, key in enumerate(objects)]
    )
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), items))


def notify_queue(s3: Any, sqs: Any, bucket: str, *, prefix: str = "", name: str = "curated-events") -> str:
    """Send the bucket's object created/removed events under ``prefix`` to a new SQS queue.

    Returns the queue URL. Saving the configuration puts an ``s3:TestEvent`` in the queue first.
    """
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    config: dict[str, Any] = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
    if prefix:
        config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]})
    return url
