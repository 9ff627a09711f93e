"""Typed errors raised by library code.

Every message says what happened and what the user can do about it; entry points
print the message and choose the exit code, library code never does.
"""


class ClipsearchError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(ClipsearchError):
    """Bad settings or arguments."""


class ModelError(ClipsearchError):
    """A model could not be resolved, downloaded or loaded."""


class ModelMismatchError(ClipsearchError):
    """The store was built with a different model than the one requested."""


class StoreError(ClipsearchError):
    """The catalog or the vector index cannot be opened or used."""


class StoreLockedError(StoreError):
    """Another index run holds the store's write lock."""


class EmptyStoreError(StoreError):
    """The store holds no images yet."""


class QueryError(ClipsearchError):
    """A search request is invalid."""


class ImageDecodeError(ClipsearchError):
    """One file could not be read as an image (per-file; the run goes on)."""


class TrainingError(ClipsearchError):
    """Training data or configuration is unusable."""


class OriginalMissingError(StoreError):
    """An indexed file is no longer on disk."""


class OriginalChangedError(StoreError):
    """The file at an indexed path is no longer the one the catalog row describes; it is not served."""
