"""Artifact store on S3-compatible object storage (boto3), with a local cache of its answers.

Endpoint, region and credentials come the standard AWS way (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``
profiles with SSO or assumed roles, instance and container roles): boto3's credential chain.

Object storage cannot rename a folder into place, so ``publish`` first claims the version's
prefix with a create-only write (``If-None-Match: *``) of a hidden ``.claim`` object, then
uploads the files (large ones in concurrent multipart parts), the last one given (the
manifest) last. A writer killed half-way leaves a claimed prefix without a manifest: never a
visible version, and its number is never handed out again. Buckets should carry a lifecycle
rule aborting incomplete multipart uploads, which such a writer also leaves.

When the store cannot be reached (connection refused, timeout, 5xx), reads answer from the
cache: version files kept since they were first read, and the last-seen content of the keys
that change (aliases, the default model record, manifests, listings). One warning is logged
per outage; a read the cache cannot answer raises ``StoreUnavailableError``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tabops.errors import StoreUnavailableError
from tabops.registry.cache import Kind, StoreCache
from tabops.registry.s3_access import (
    MULTIPART_BYTES,
    UPLOAD_THREADS,
    LostRaceError,
    check_bucket_name,
    create_bucket,
    endpoint_folder,
    new_client,
    parse_s3_url,
    transfer_config,
    translated_errors,
)
from tabops.registry.store import key_parts
from tabops.registry.versions import is_immutable_key

__all__ = ["CLAIM", "OUTAGE_RETRY_SECONDS", "S3ArtifactStore", "create_bucket", "parse_s3_url"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


CLAIM = ".claim"
"""The object that claims a prefix for one publisher; dot-named, so never a listed child."""
OUTAGE_RETRY_SECONDS = 5.0
"""After a failed call, reads the cache can answer skip the store for this long."""


class S3ArtifactStore:
    """An ``ArtifactStore`` under ``s3://bucket/prefix``, caching what it reads in ``cache``.

    Args:
        bucket: the bucket (it must exist: ``create_bucket``).
        prefix: the key prefix of every object, without slashes at either end.
        cache_root: the folder of every store's cache; this store's is the folder of its
            endpoint, bucket and prefix under it. None for none (every read asks S3).
        is_immutable: which keys never change once written: the registry's version files
            (manifests excepted), read from the cache before S3 is asked.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        cache_root: Path | None = None,
        is_immutable: Callable[[str], bool] = is_immutable_key,
    ) -> None:
        self.bucket = check_bucket_name(bucket)
        self.prefix = prefix.strip("/")
        self._cache_root = cache_root
        self._cache: StoreCache | None = None
        self.is_immutable = is_immutable
        self._client_lock = threading.Lock()
        self._client_instance: Any = None
        self._outage_lock = threading.Lock()
        self._outage_since: float | None = None
        self._last_failure = 0.0

    @classmethod
    def from_url(cls, url: str, cache_root: Path | None = None) -> S3ArtifactStore:
        """The store of ``s3://bucket[/prefix]``, cached under ``cache_root``."""
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, cache_root=cache_root)

    @property
    def cache(self) -> StoreCache | None:
        """This store's cache: ``cache_root/<endpoint>/<bucket>/<prefix>``, or None.

        Keyed by endpoint too: two servers may each hold a bucket of the same name, and
        version numbers of one say nothing of the other's files.
        """
        if self._cache_root is None:
            return None
        if self._cache is None:  # two threads may both make it: the same folder either way
            parts = key_parts(self.prefix) if self.prefix else []
            folder = self._cache_root.joinpath(endpoint_folder(self.endpoint), self.bucket, *parts)
            self._cache = StoreCache(folder)
        return self._cache

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.url!r})"

    @property
    def _client(self) -> Any:
        # Made on first use: importing boto3 and building a client take most of a second.
        with self._client_lock:
            if self._client_instance is None:
                self._client_instance = new_client(self.bucket)
            return self._client_instance

    @property
    def endpoint(self) -> str:
        """The endpoint URL requests go to."""
        return str(self._client.meta.endpoint_url)

    def _object(self, key: str) -> str:
        if not key:
            return self.prefix
        return f"{self.prefix}/{key}" if self.prefix else key

    def _folder(self, prefix: str) -> str:
        return self._object(prefix) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")

    @contextmanager
    def _calling(self, action: str, key: str) -> Iterator[None]:
        try:
            with translated_errors(action, self.bucket, self._object(key), self.endpoint):
                yield
        except StoreUnavailableError as exc:
            self._record_failure(exc)
            raise
        except (FileNotFoundError, LostRaceError):
            self._record_success()  # an answer, if a negative one
            raise
        self._record_success()

    def _record_failure(self, exc: StoreUnavailableError) -> None:
        with self._outage_lock:
            self._last_failure = time.monotonic()
            if self._outage_since is None:
                self._outage_since = self._last_failure
                logger.warning("%s; answering from the local cache until it answers", exc)

    def _record_success(self) -> None:
        with self._outage_lock:
            if self._outage_since is not None:
                down = time.monotonic() - self._outage_since
                logger.info("%s answers again after %.0f s", self.url, down)
                self._outage_since = None

    def _is_resting(self) -> bool:
        """Whether a call failed so recently that the cache answers without asking S3."""
        with self._outage_lock:
            recent = time.monotonic() - self._last_failure < OUTAGE_RETRY_SECONDS
            return self._outage_since is not None and recent

    def _recall(self, kind: Kind, key: str) -> bytes | None:
        return self.cache.read(kind, key) if self.cache is not None else None

    def _keep(self, key: str, data: bytes) -> None:
        if self.cache is not None:
            self.cache.write("files" if self.is_immutable(key) else "values", key, data)

    def _read_through(
        self, fetch: Callable[[], _T], recall: Callable[[], _T | None], keep: Callable[[_T], None]
    ) -> _T:
        """S3's answer (kept in the cache), or the cache's while S3 cannot be reached."""
        if self._is_resting():
            seen = recall()
            if seen is not None:
                return seen
        try:
            value = fetch()
        except StoreUnavailableError as exc:
            seen = recall()
            if seen is None:
                raise StoreUnavailableError(
                    f"{exc.message}, and the local cache holds no copy of it"
                ) from exc
            return seen
        keep(value)
        return value

    def _get(self, key: str) -> tuple[bytes, str]:
        with self._calling("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._object(key))
            data: bytes = response["Body"].read()
        return data, str(response["ETag"])

    def _put(self, key: str, data: bytes, **conditions: str) -> None:
        with self._calling("write", key):
            if len(data) > MULTIPART_BYTES and not conditions:
                self._client.upload_fileobj(
                    io.BytesIO(data), self.bucket, self._object(key), Config=transfer_config()
                )
            else:
                self._client.put_object(
                    Bucket=self.bucket, Key=self._object(key), Body=data, **conditions
                )

    def read_bytes(self, key: str) -> bytes:
        """The bytes under ``key``: from the cache for version files, else from S3.

        Raises:
            FileNotFoundError: no such key.
            StoreUnavailableError: S3 cannot be reached and the cache holds no copy.
        """
        key_parts(key)
        if self.is_immutable(key):
            cached = self._recall("files", key)
            if cached is not None:
                return cached
            data = self._read_through(lambda: self._get(key)[0], lambda: None, lambda _: None)
            self._keep(key, data)
            return data
        try:
            return self._read_through(
                lambda: self._get(key)[0],
                lambda: self._recall("values", key),
                lambda data: self._keep(key, data),
            )
        except FileNotFoundError:
            if self.cache is not None:
                self.cache.remove("values", key)
            raise

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes under ``key`` and their ETag, always from S3 (a write follows).

        Raises:
            FileNotFoundError: no such key.
            StoreUnavailableError: S3 cannot be reached.
        """
        key_parts(key)
        data, etag = self._get(key)
        self._keep(key, data)
        return data, etag

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (one PUT, or a multipart upload when large)."""
        key_parts(key)
        self._put(key, data)
        self._keep(key, data)

    def write_if(self, key: str, data: bytes, expected: str | None) -> bool:
        """Store ``data`` if ``key`` still has the ETag ``expected`` (None: is absent).

        Conditional writes (``If-Match``, ``If-None-Match: *``), so S3 itself refuses the
        write of a writer that lost the race.
        """
        key_parts(key)
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            self._put(key, data, **condition)
        except LostRaceError:
            return False
        except FileNotFoundError:  # If-Match on a key deleted meanwhile
            return False
        self._keep(key, data)
        return True

    def exists(self, key: str) -> bool:
        """Whether an object ``key``, or any object under ``key/``, exists."""
        key_parts(key)
        if self.is_immutable(key) and self._recall("files", key) is not None:
            return True

        def fetch() -> bool:
            try:
                with self._calling("look up", key):
                    self._client.head_object(Bucket=self.bucket, Key=self._object(key))
                return True
            except FileNotFoundError:
                return self._has_objects_under(key)

        def recall() -> bool | None:
            return True if self._recall("values", key) is not None else None

        return self._read_through(fetch, recall, lambda _: None)

    def _has_objects_under(self, prefix: str) -> bool:
        with self._calling("list", prefix):
            found = self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._folder(prefix), MaxKeys=1
            )
        return int(found.get("KeyCount", 0)) > 0

    def _recall_listing(self, prefix: str, file: str | None = None) -> list[str] | None:
        return self.cache.read_listing(prefix, file) if self.cache is not None else None

    def _keep_listing(self, prefix: str, names: list[str], file: str | None = None) -> None:
        if self.cache is not None:
            self.cache.write_listing(prefix, names, file)

    def _list(self, prefix: str, *, delimited: bool) -> Iterator[tuple[str, bool]]:
        """(name under ``prefix``, whether a sub-prefix) of every listed entry."""
        base = self._folder(prefix)
        options = {"Delimiter": "/"} if delimited else {}
        with self._calling("list", prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, **options
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    yield str(common["Prefix"])[len(base) :].rstrip("/"), True
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(base) :], False

    def list_children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix``: one delimited listing; dot-names left out."""
        if prefix:
            key_parts(prefix)

        def fetch() -> list[str]:
            names = {name for name, _ in self._list(prefix, delimited=True)}
            return sorted(name for name in names if name and not name.startswith("."))

        return self._read_through(
            fetch,
            lambda: self._recall_listing(prefix),
            lambda names: self._keep_listing(prefix, names),
        )

    def list_children_holding(self, prefix: str, file: str) -> list[str]:
        """Names under ``prefix`` holding ``<name>/<file>``: one listing of every key below."""
        if prefix:
            key_parts(prefix)
        key_parts(file)

        def fetch() -> list[str]:
            names = set()
            for name, _ in self._list(prefix, delimited=False):
                child, _, rest = name.partition("/")
                if rest == file and child and not child.startswith("."):
                    names.add(child)
            return sorted(names)

        return self._read_through(
            fetch,
            lambda: self._recall_listing(prefix, file),
            lambda names: self._keep_listing(prefix, names, file),
        )

    def publish(self, prefix: str, files: Mapping[str, bytes]) -> bool:
        """Claim ``prefix``, upload the files concurrently, then the last one given.

        Returns:
            False, writing nothing, when anything exists under ``prefix`` (a version, or
            the claim of another writer, living or dead).
        """
        key_parts(prefix)
        names = list(files)
        for name in names:
            key_parts(name)
        if not names:
            raise ValueError("nothing to publish")
        if self._has_objects_under(prefix):
            return False
        claim = {"claimed": datetime.now(UTC).isoformat(), "host": socket.gethostname()}
        claim["pid"] = str(os.getpid())
        try:
            self._put(f"{prefix}/{CLAIM}", json.dumps(claim).encode(), IfNoneMatch="*")
        except LostRaceError:
            return False
        *first, last = names

        def upload(name: str) -> None:
            self._put(f"{prefix}/{name}", files[name])

        if first:
            with ThreadPoolExecutor(min(UPLOAD_THREADS, len(first))) as pool:
                for _ in pool.map(upload, first):
                    pass
        self._put(f"{prefix}/{last}", files[last], IfNoneMatch="*")
        for name in names:
            self._keep(f"{prefix}/{name}", files[name])
        return True
