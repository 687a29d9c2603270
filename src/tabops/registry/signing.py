"""Manifest signatures: HMAC-SHA256 over a manifest's canonical content, with a secret key.

A manifest already holds the sha256 of every other file of its version, so signing the
manifest vouches for the whole version: the model, its compiled graph, the golden rows and
the card. What is signed is the stored JSON document without its ``signature`` entry, as
canonical JSON (sorted keys, no spaces, ASCII), so a signature survives re-indentation and
never covers itself. The signature entry records a key id (a keyed hash of the key, not the
key) so that a refusal can tell "signed with another key" from "changed since signing".

Checking happens where a version is loaded to serve or score (``Predictor.load``), as the
file hashes and golden rows are checked there; listing versions and reading manifests do
not need the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tabops.errors import ArtifactIntegrityError, RegistryError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from tabops.registry.versions import ModelRegistry

ALGORITHM = "hmac-sha256"
SIGNATURE = "signature"
"""The manifest key holding the signature entry."""
_KEY_ID_MESSAGE = b"tabops manifest signing key id"
_MANIFEST = "manifest.json"  # versions.MANIFEST, which imports this module


def canonical_content(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the document without its signature, as canonical JSON."""
    content = {key: value for key, value in document.items() if key != SIGNATURE}
    # ASCII with \u escapes: every string encodes, even a lone surrogate in a forged file.
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def stored_json(document: Mapping[str, Any]) -> bytes:
    """A manifest document as the registry stores it (the layout of ``Manifest.to_json``)."""
    return json.dumps(document, indent=2, default=str).encode() + b"\n"


def parse_document(raw: bytes, where: str) -> dict[str, Any]:
    """A stored manifest's JSON object.

    Raises:
        ArtifactIntegrityError: the bytes are not a JSON object.
    """
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactIntegrityError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ArtifactIntegrityError(f"{where} does not hold a JSON object")
    return document


def read_version_manifest(
    registry: ModelRegistry, name: str, number: int
) -> tuple[bytes, dict[str, Any]]:
    """A version's stored manifest, as bytes and as a document that names that version.

    Raises:
        ArtifactIntegrityError: the manifest is not a JSON object, or names another version.
    """
    where = f"{name}:{number}"
    raw = registry.read_file(name, number, _MANIFEST)
    document = parse_document(raw, f"{where} {_MANIFEST}")
    if (document.get("name"), document.get("version")) != (name, number):
        raise ArtifactIntegrityError(
            f"{where}: the manifest is that of {document.get('name')}:{document.get('version')}"
        )
    return raw, document


class ManifestSigner:
    """Signs and checks manifests with one secret key, which it never shows."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode() if isinstance(key, str) else key
        if not self._key:
            raise ValueError("a signing key cannot be empty")
        self.key_id = hmac.new(self._key, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]
        """Names the key in signatures and messages; reveals nothing of the key."""

    @classmethod
    def from_secret(cls, secret: SecretStr | None) -> ManifestSigner | None:
        """The signer of a configured key (``security.signing_key``), or None when unset."""
        if secret is None or not secret.get_secret_value():
            return None
        return cls(secret.get_secret_value())

    def __repr__(self) -> str:
        return f"ManifestSigner(key_id={self.key_id!r})"

    def signature(self, document: Mapping[str, Any]) -> dict[str, str]:
        """The signature entry of a manifest document (any signature it holds left out)."""
        digest = hmac.new(self._key, canonical_content(document), hashlib.sha256).hexdigest()
        return {"algorithm": ALGORITHM, "key_id": self.key_id, "value": digest}

    def sign(self, document: Mapping[str, Any]) -> bytes:
        """The document with its signature entry, as stored bytes."""
        unsigned = {key: value for key, value in document.items() if key != SIGNATURE}
        return stored_json({**unsigned, SIGNATURE: self.signature(unsigned)})

    def has_signed(self, document: Mapping[str, Any]) -> bool:
        """Whether the document carries a valid signature made with this key."""
        found = document.get(SIGNATURE)
        if not isinstance(found, dict) or not isinstance(found.get("value"), str):
            return False
        expected = self.signature(document)["value"]
        # compare_digest takes the same time wherever the first difference is.
        return found.get("algorithm") == ALGORITHM and hmac.compare_digest(
            found["value"].encode(), expected.encode()
        )

    def check(self, document: Mapping[str, Any], name: str, version: int) -> None:
        """Refuse a version whose manifest is unsigned, signed otherwise, or moved.

        Raises:
            ArtifactIntegrityError: the signature is missing or does not match, or the
                manifest names another model or version than where it is stored.
        """
        ref = f"{name}:{version}"
        found = document.get(SIGNATURE)
        if found is None:
            raise ArtifactIntegrityError(
                f"{ref}: the manifest is not signed and a signing key is set; refusing to "
                f"serve it (sign it with 'tabops models sign {name} --version {version}' "
                "if you trust it)"
            )
        if not self.has_signed(document):
            other = found.get("key_id") if isinstance(found, dict) else None
            why = (
                f"it was signed with key id {other}, the configured key's id is {self.key_id}"
                if isinstance(other, str) and other != self.key_id
                else "the manifest was changed after it was signed"
            )
            raise ArtifactIntegrityError(
                f"{ref}: the manifest signature does not match ({why}); refusing to serve it"
            )
        if (document.get("name"), document.get("version")) != (name, version):
            raise ArtifactIntegrityError(
                f"{ref}: the signed manifest is that of "
                f"{document.get('name')}:{document.get('version')}; refusing to serve it"
            )


@dataclass(frozen=True)
class SigningResult:
    """What signing did to one version: ``signed``, ``re-signed`` or ``unchanged``."""

    name: str
    version: int
    status: Literal["signed", "re-signed", "unchanged"]
    key_id: str


def sign_version(
    registry: ModelRegistry,
    name: str,
    version: int,
    previous: Iterable[ManifestSigner] = (),
    *,
    force: bool = False,
) -> SigningResult:
    """Sign a registered version's manifest with the registry's key, in place and atomically.

    Every file is first checked against its sha256 in the manifest, so signing never vouches
    for a changed file. A manifest signed with one of the ``previous`` keys (rotation) is
    re-signed; one whose signature matches no key given is refused unless ``force``.

    Raises:
        RegistryError: the registry has no signing key.
        ModelNotFoundError: no such model.
        VersionNotFoundError: no such version.
        ArtifactIntegrityError: a file is missing or changed, the manifest names another
            version, or its signature matches no key given (without ``force``).
    """
    signer = registry.signer
    if signer is None:
        raise RegistryError("no signing key is set: set TABOPS_SIGNING_KEY to sign versions")
    number = registry.resolve(name, version)
    ref = f"{name}:{number}"
    _raw, document = read_version_manifest(registry, name, number)
    _check_files(registry, name, number, document.get("files"))
    status: Literal["signed", "re-signed", "unchanged"] = "signed"
    if SIGNATURE in document:
        if signer.has_signed(document):
            return SigningResult(name, number, "unchanged", signer.key_id)
        if not force and not any(key.has_signed(document) for key in previous):
            raise ArtifactIntegrityError(
                f"{ref}: its signature matches no key given; pass the key it was signed with "
                "(--previous-key-env), or --force if you trust this version as it is"
            )
        status = "re-signed"
    registry.replace_manifest(name, number, signer.sign(document))
    return SigningResult(name, number, status, signer.key_id)


def _check_files(registry: ModelRegistry, name: str, version: int, files: Any) -> None:
    ref = f"{name}:{version}"
    if not isinstance(files, dict):
        raise ArtifactIntegrityError(f"{ref}: the manifest lists no file hashes")
    for file, expected in files.items():
        try:
            data = registry.read_file(name, version, file)
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(f"{ref}: file {file} is missing") from exc
        except ValueError as exc:  # a name the store refuses, such as one with '..'
            raise ArtifactIntegrityError(f"{ref}: the manifest lists {file!r}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != expected:
            raise ArtifactIntegrityError(f"{ref}: {file} does not match its sha256")
