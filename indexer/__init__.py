"""The indexing pipeline: scan -> decode -> embed -> write, run by a small runner with bounded queues."""

from clipsearch.indexer.runner import IndexOptions, run_index
from clipsearch.indexer.summary import IndexSummary

__all__ = ["IndexOptions", "IndexSummary", "run_index"]
