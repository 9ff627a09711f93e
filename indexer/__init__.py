"""The indexing pipeline: scan -> decode -> embed -> write, run by a small runner with bounded queues."""

from indexer.runner import IndexOptions, run_index
from indexer.summary import IndexSummary

__all__ = ["IndexOptions", "IndexSummary", "run_index"]
