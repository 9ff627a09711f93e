"""The one search service behind the CLI, the UI and the HTTP API.

Front ends build a SearchRequest and render the SearchResult; all ranking lives here.
"""

from clipsearch.search.request import MAX_K, SearchHit, SearchRequest, SearchResult, load_query_image
from clipsearch.search.service import EXACT_FILTER_MAX, RERANK_FACTOR, RERANK_MIN, SearchService
from clipsearch.search.terms import QueryTerm, parse_query, split_query, split_weight

__all__ = [
    "EXACT_FILTER_MAX",
    "MAX_K",
    "RERANK_FACTOR",
    "RERANK_MIN",
    "QueryTerm",
    "SearchHit",
    "SearchRequest",
    "SearchResult",
    "SearchService",
    "load_query_image",
    "parse_query",
    "split_query",
    "split_weight",
]
