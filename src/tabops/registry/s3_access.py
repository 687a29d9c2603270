"""Reaching S3 with boto3: bucket URLs, the client, bucket creation, errors translated.

botocore's exceptions never leave this module: ``translated_errors`` turns them into the
tree of ``tabops.errors`` (plus ``FileNotFoundError`` and ``LostRaceError``), in messages
that name the endpoint and bucket and hold no secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from tabops.errors import MissingExtraError, RegistryError, StoreUnavailableError
from tabops.registry.store import key_parts

MULTIPART_BYTES = 16 * 1024 * 1024
"""Objects larger than this go up in parts."""
PART_BYTES = 8 * 1024 * 1024
UPLOAD_THREADS = 8
# An outage is noticed within seconds: a short connect timeout and one retry.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 2

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
_LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_BUSY = frozenset({"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown"})


class LostRaceError(Exception):
    """A conditional write found the key changed (or present) since it was read."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """The bucket and key prefix of ``s3://bucket[/prefix]``.

    Raises:
        RegistryError: not an ``s3://`` URL, or an invalid bucket name or prefix.
    """
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise RegistryError(f"{url!r} is not an s3://bucket[/prefix] URL")
    bucket = check_bucket_name(parsed.netloc)
    prefix = parsed.path.strip("/")
    if prefix:
        try:
            key_parts(prefix)
        except ValueError:
            raise RegistryError(f"invalid key prefix {prefix!r} in {url!r}") from None
    return bucket, prefix


def check_bucket_name(name: str) -> str:
    """The name, when it is a valid S3 bucket name (3-63 of a-z, 0-9, ``.`` and ``-``).

    Raises:
        RegistryError: it is not.
    """
    if not _BUCKET.fullmatch(name) or ".." in name:
        raise RegistryError(
            f"invalid bucket name {name!r}: 3 to 63 characters of a-z, 0-9, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def endpoint_folder(endpoint: str) -> str:
    """A folder name for an endpoint URL: its scheme, host, port and path, nothing secret."""
    parsed = urlparse(endpoint)
    port = f"-{parsed.port}" if parsed.port else ""
    name = f"{parsed.scheme}-{parsed.hostname or 'default'}{port}{parsed.path}"
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-.") or "default"


def new_client(bucket: str) -> Any:
    """A boto3 S3 client configured the standard AWS way, with short timeouts."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise MissingExtraError("S3 registry", "s3") from exc
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=2 * UPLOAD_THREADS,
    )
    with translated_errors("connect to", bucket, "", "the configured endpoint"):
        return boto3.session.Session().client("s3", config=config)


@contextmanager
def translated_errors(action: str, bucket: str, key: str, endpoint: str) -> Iterator[None]:
    """Turn botocore's exceptions into the tree of ``tabops.errors``, secrets left out.

    Raises:
        FileNotFoundError: no such key.
        LostRaceError: a conditional write lost.
        StoreUnavailableError: the store cannot be reached or answers 5xx.
        RegistryError: no bucket, no access, no credentials, or another refusal.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code == "NoSuchBucket":
            raise RegistryError(
                f"the bucket {bucket!r} does not exist at {endpoint}; create it with "
                f"'tabops store create-bucket {bucket}'"
            ) from exc
        if code in _MISSING or status == 404:
            raise FileNotFoundError(f"{where}: no such key") from exc
        if code in _LOST_RACE:
            raise LostRaceError(code) from exc
        if code in _DENIED or status == 403:
            raise RegistryError(
                f"access to {where} at {endpoint} was denied ({code or status}): check the "
                "credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) "
                "and what they may do in the bucket"
            ) from exc
        if status >= 500 or code in _BUSY:
            raise StoreUnavailableError(
                f"the S3 store at {endpoint} could not {action} {where} ({code or status})"
            ) from exc
        raise RegistryError(
            f"the S3 store at {endpoint} refused to {action} {where} ({code or status})"
        ) from exc
    except (ConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise StoreUnavailableError(
            f"the S3 store at {endpoint} cannot be reached to {action} {where} "
            f"({type(exc).__name__})"
        ) from exc
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as exc:
        detail = "no credentials found" if isinstance(exc, NoCredentialsError) else str(exc)
        raise RegistryError(
            f"cannot {action} {where}: {detail}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile of ~/.aws/config"
        ) from exc
    except BotoCoreError as exc:
        raise RegistryError(
            f"cannot {action} {where} at {endpoint} ({type(exc).__name__})"
        ) from exc


def create_bucket(url_or_name: str) -> bool:
    """Create the bucket of an ``s3://bucket[/prefix]`` URL, or of that name.

    Returns:
        True when it was created, False when it existed already and is ours.

    Raises:
        RegistryError: an invalid name, a name another account holds, or no access.
        StoreUnavailableError: the store cannot be reached.
    """
    if url_or_name.startswith("s3://"):
        bucket = parse_s3_url(url_or_name)[0]
    else:
        bucket = check_bucket_name(url_or_name)
    client = new_client(bucket)
    region = client.meta.region_name
    options: dict[str, Any] = {}
    if region not in (None, "us-east-1", "aws-global"):
        options["CreateBucketConfiguration"] = {"LocationConstraint": region}
    endpoint = client.meta.endpoint_url
    try:
        # us-east-1 answers 200 to creating a bucket one owns already: ask first.
        with translated_errors("look up", bucket, "", endpoint):
            client.head_bucket(Bucket=bucket)
        return False
    except FileNotFoundError:
        pass
    try:
        with translated_errors("create", bucket, "", endpoint):
            client.create_bucket(Bucket=bucket, **options)
    except RegistryError as exc:
        cause = getattr(exc.__cause__, "response", {}).get("Error", {}).get("Code")
        if cause == "BucketAlreadyOwnedByYou":
            return False
        if cause == "BucketAlreadyExists":
            raise RegistryError(f"the bucket name {bucket!r} is taken by another account") from exc
        raise
    return True


def transfer_config() -> Any:
    """How boto3 uploads a large object: parts of ``PART_BYTES``, several at a time."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=UPLOAD_THREADS,
    )
