"""Domain errors raised by the core and translated once at each edge (HTTP, CLI)."""


class SearchError(Exception):
    """Base class: every error the core raises on purpose.

    `code` is the stable machine-readable name used in the HTTP error body;
    `status` is the HTTP status the service answers with.
    """

    code = "search_error"
    status = 500


class BadRequest(SearchError):
    """The caller's input is wrong (empty query, k out of range, ...)."""

    status = 400

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Unauthorized(BadRequest):
    """A write without the API key."""

    status = 401


class Forbidden(BadRequest):
    """A write with the wrong API key, or with writes disabled."""

    status = 403


class IndexNotFound(SearchError):
    """There is no index where one was expected."""

    code = "index_not_found"
    status = 503


class IndexMismatch(SearchError):
    """The index was built with another model, dimension or format."""

    code = "index_mismatch"
    status = 503


class IndexCorrupt(SearchError):
    """The index's files do not match the checksums its manifest recorded."""

    code = "index_corrupt"
    status = 503


class VectorStoreError(SearchError):
    """The vector store an index names cannot be reached or read (a Milvus server down)."""

    code = "vector_store_unavailable"
    status = 503


class WouldEmptyIndex(SearchError):
    """An update that would remove every document (build a new index instead)."""

    code = "would_empty_index"
    status = 409


class DocumentNotFound(SearchError):
    code = "document_not_found"
    status = 404


class StoryNotFound(SearchError):
    code = "story_not_found"
    status = 404


class AlertNotFound(SearchError):
    code = "alert_not_found"
    status = 404


class BuildError(SearchError):
    """An index build was refused (no usable input, or --strict and a bad file)."""

    code = "build_error"
    status = 400  # over HTTP: the document given could not be indexed


class WriterUnavailable(SearchError):
    """The index's writer process stopped while it held a write."""

    code = "writer_unavailable"
    status = 503


class NotSupported(SearchError):
    """What this index cannot do (writes and alerts on an index held in Milvus)."""

    code = "not_supported"
    status = 501
