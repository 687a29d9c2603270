"""The one exception tree of tabops; transports map it to HTTP statuses or exit codes.

TabopsError
├── RequestError              a request is not what the endpoint takes
│   ├── EmptyBodyError        the body is empty
│   ├── MalformedBodyError    the body does not parse as JSON
│   │   └── MalformedFormError a multipart form does not parse
│   ├── InvalidRequestError   the body or a parameter has the wrong shape
│   ├── BatchTooLargeError    more records than one request may carry
│   ├── BodyTooLargeError     a request body beyond the size limit
│   ├── UploadTooLargeError   an upload beyond the size limit
│   ├── UnsupportedMediaError a content type the endpoint cannot read
│   └── ResourceNotFoundError something the request names does not exist
│       └── PredictionNotFoundError no logged prediction has that id
├── AccessError               the caller may not do this
│   ├── NotAuthenticatedError no credentials, or unknown ones
│   ├── NotAuthorizedError    known caller, but not allowed this action
│   │   └── PathNotAllowedError a server path outside the configured roots
│   ├── OriginNotAllowedError a web page of another site sent a state-changing request
│   └── RateLimitedError      the caller sent more requests than its rate allows
├── ProjectError              the project file is missing or invalid
├── DataError                 a data file cannot be read or does not fit the task
├── InvalidInputError         records offered for prediction break the feature spec
├── MissingExtraError         an optional engine is used without its pip extra installed
├── GateFailedError           a trained model missed a metric gate
├── RegistryError             the model registry cannot do what was asked
│   ├── ModelNotFoundError    no such model
│   ├── VersionNotFoundError  no such version or alias of a model
│   ├── CardNotFoundError     the version has no model card
│   ├── ArtifactIntegrityError a stored version fails its hash or golden-row check
│   └── StoreUnavailableError the registry's remote store cannot be reached
├── ModelImportError          a model trained elsewhere cannot be imported
│   └── UnsafeModelError      its file would import code outside the allow-list
├── TrainingError             training could not produce a model
├── DatabaseError             the metadata database cannot be reached or its URL is wrong
│   └── DatabaseBusyError     the database stayed locked longer than its wait
├── StorageFullError          the disk holding tabops' files is full
├── RequestTimeoutError       a request took longer than the server allows
├── FeatureStoreError         the online store cannot give what was asked
│   ├── FeatureViewNotFoundError no such feature view
│   ├── EntityNotFoundError   no features for that entity id
│   ├── FeaturesUnavailableError the store lacks the view or features a model needs
│   └── StoredFeaturesInvalidError stored values no longer fit the model
└── JobError                  a job cannot be found or does not hold what was asked
    ├── JobNotFoundError      no job has that id
    └── JobNotFinishedError   the job has no result yet
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a field path) and what."""

    field: str
    problem: str


class TabopsError(Exception):
    """Base of every error tabops raises on purpose."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class RequestError(TabopsError):
    """A request is not what the endpoint takes (the caller's mistake)."""


class EmptyBodyError(RequestError):
    """The request body is empty."""


class MalformedBodyError(RequestError):
    """The request body does not parse (not JSON, or a broken form: ``MalformedFormError``)."""


class MalformedFormError(MalformedBodyError):
    """A multipart form does not parse (no boundary, broken parts, cut short)."""


class InvalidRequestError(RequestError):
    """The body or a parameter has the wrong shape (not an object, an index out of range)."""


class BatchTooLargeError(RequestError):
    """More records than one request may carry."""


class BodyTooLargeError(RequestError):
    """A request body beyond the configured size limit, refused while it is read."""


class UploadTooLargeError(RequestError):
    """An upload beyond the configured size limit."""


class UnsupportedMediaError(RequestError):
    """A content type the endpoint cannot read."""


class ResourceNotFoundError(RequestError):
    """Something the request names does not exist."""


class PredictionNotFoundError(ResourceNotFoundError):
    """No logged prediction has that id (or not yet: the log is written every second)."""


class AccessError(TabopsError):
    """The caller may not do what it asked."""


class NotAuthenticatedError(AccessError):
    """No credentials, or credentials nobody issued."""


class NotAuthorizedError(AccessError):
    """A known caller asked for an action it is not allowed."""


class PathNotAllowedError(NotAuthorizedError):
    """A path sent over the network lies outside the folders the server may read."""


class ForbiddenBySettingsError(NotAuthorizedError):
    """The server's settings forbid what was asked, whichever key asks (no scope allows it)."""


class OriginNotAllowedError(AccessError):
    """A web page of another site (its ``Origin``) sent a request that changes state."""


class RateLimitedError(AccessError):
    """The caller sent more requests than its rate limit allows; retry after a while."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[RateLimitedError], tuple[str, float]]:
        return type(self), (self.message, self.retry_after)


class ProjectError(TabopsError):
    """The project file is missing or invalid."""


class DataError(TabopsError):
    """A data file cannot be read or does not fit the task."""


class InvalidInputError(TabopsError):
    """Records offered for prediction break the feature spec."""


class MissingExtraError(TabopsError):
    """An optional engine (Dask, Spark) is used without its pip extra installed."""

    def __init__(self, engine: str, extra: str) -> None:
        super().__init__(
            f"the {engine} engine needs the {extra!r} extra: pip install 'tabops[{extra}]'"
        )
        self.engine = engine
        self.extra = extra

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str]]:
        return type(self), (self.engine, self.extra)


class GateFailedError(TabopsError):
    """A trained model missed one or more metric gates; ``result`` holds what was trained."""

    def __init__(
        self, message: str, problems: list[Problem] | None = None, result: object = None
    ) -> None:
        super().__init__(message, problems)
        self.result = result


class TrainingError(TabopsError):
    """Training could not produce a model."""


class RegistryError(TabopsError):
    """The model registry cannot do what was asked."""


class ModelNotFoundError(RegistryError):
    """No model of that name exists."""


class VersionNotFoundError(RegistryError):
    """No such version or alias exists for a model."""


class CardNotFoundError(RegistryError):
    """The version has no model card."""


class ArtifactIntegrityError(RegistryError):
    """A stored version fails its hash or golden-row check and must not be served."""


class StoreUnavailableError(RegistryError):
    """The registry's remote store (S3) cannot be reached, and no cached copy answers."""


class ModelImportError(TabopsError):
    """A model trained elsewhere cannot be imported.

    Its file is unreadable, it is not a binary classifier, or it is at odds with its sample.
    """


class UnsafeModelError(ModelImportError):
    """A pickle would import globals outside the allow-list; nothing of it was run."""


class DatabaseError(TabopsError):
    """The metadata database cannot be reached or its URL is wrong."""


class DatabaseBusyError(DatabaseError):
    """The database stayed locked by other writers for longer than tabops waits."""


class StorageFullError(TabopsError):
    """The disk holding tabops' files (registry, jobs, uploads) has no space left."""


class RequestTimeoutError(TabopsError):
    """A request took longer than the server allows one to take."""


class ImportsBusyError(TabopsError):
    """The server is importing as many models as it takes at once; retry after a while."""


class FeatureStoreError(TabopsError):
    """The online store cannot give what was asked."""


class FeatureViewNotFoundError(FeatureStoreError):
    """The online store has no view of that name."""


class EntityNotFoundError(FeatureStoreError):
    """No features are stored for that entity id."""


class FeaturesUnavailableError(FeatureStoreError):
    """The store lacks the view or features a model needs (materialize them first)."""


class StoredFeaturesInvalidError(FeatureStoreError):
    """The stored features of an entity no longer fit the model (materialize them again)."""


class JobError(TabopsError):
    """A job cannot be found or does not hold what was asked."""


class JobNotFoundError(JobError):
    """No job has that id."""


class JobNotFinishedError(JobError):
    """The job has not finished, or finished without a result to download."""
