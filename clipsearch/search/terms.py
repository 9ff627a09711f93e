"""The terms of a combined query: texts and example images, each added or subtracted with a weight.

A query is the weighted sum of its terms' normalised vectors, renormalised (CLIP's "vector
arithmetic": `"golden retriever" + "snow" - "people"`). The compact form of a query string is
`2:cat + ./pool.jpg - 0.5:fruit`: terms separated by `+` or `-` with spaces around them, each
with an optional `WEIGHT:` prefix. Whether a term names an example image is decided by the front
end (only it may read local files), through the `image_term` callback of `parse_query`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from clipsearch.errors import QueryError

# `+` or `-` (or the typographic minus) standing alone between spaces: "t-shirt" stays one term.
_OPERATOR = re.compile(r"\s([+\-\u2212])(?=\s)")
_WEIGHT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*:\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class QueryTerm:
    """One part of a combined query.

    Exactly one of `text`, `image` and `image_id` is set. `weight` is how much the term counts,
    always positive: whether it is added or subtracted is where it sits (SearchRequest.plus or
    .minus). `label` names an image term in results (its path or upload name).
    """

    text: str | None = None
    image: Image.Image | None = None  # a decoded example picture
    image_id: int | None = None  # an indexed image's own vector ("more like this")
    weight: float = 1.0
    label: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.text, self.image, self.image_id)) != 1:
            raise QueryError("a query term is one text, one example image or one indexed image")
        check_weight(self.weight, self.describe_value())

    @classmethod
    def parse(cls, spec: str, image_term: Callable[[str, float], QueryTerm | None] | None = None) -> QueryTerm:
        """`snow` or `2:snow` (or an example image, when `image_term` recognises the rest)."""
        weight, rest = split_weight(spec)
        if image_term is not None:
            term = image_term(rest, weight)
            if term is not None:
                return term
        return cls(text=rest, weight=weight)

    @property
    def kind(self) -> str:
        return "text" if self.text is not None else ("image" if self.image is not None else "indexed image")

    def describe_value(self) -> str:
        if self.text is not None:
            return self.text
        if self.image is not None:
            return self.label or "example image"
        return self.label or f"image {self.image_id}"

    def describe(self, sign: int) -> dict[str, Any]:
        """How results report the term: its kind, text or image name, and signed weight."""
        return {"kind": self.kind, "value": self.describe_value(), "weight": sign * self.weight}


def check_weight(weight: float, what: str) -> None:
    if not (math.isfinite(weight) and weight > 0):
        raise QueryError(f"the weight of {what!r} must be a positive number (got {weight})")


def split_weight(spec: str) -> tuple[float, str]:
    """`2:snow` -> (2.0, "snow"); `snow` -> (1.0, "snow"). The rest is stripped, never empty."""
    match = _WEIGHT.match(spec)
    weight, rest = (float(match.group(1)), match.group(2)) if match else (1.0, spec)
    rest = " ".join(rest.split())
    if not rest:
        raise QueryError(f"empty query term {spec.strip()!r}: write WEIGHT:TERM, e.g. 2:snow")
    check_weight(weight, rest)
    return weight, rest


def split_query(query: str) -> list[tuple[int, str]]:
    """The compact form `2:cat + ./pool.jpg - fruit` -> [(+1, "2:cat"), (+1, "./pool.jpg"), (-1, "fruit")].

    A query without a standalone `+` or `-` is one term, exactly as typed; a blank one is none.
    """
    pieces = _OPERATOR.split(f" {query} ")  # [term, op, term, op, term, ...]
    if len(pieces) == 1:
        return [(1, pieces[0].strip())] if pieces[0].strip() else []
    parts: list[tuple[int, str]] = []
    for i in range(0, len(pieces), 2):
        chunk = pieces[i].strip()
        if not chunk:
            if i == 0:
                continue  # a leading sign: "- people + dogs"
            raise QueryError(f"the query {query.strip()!r} has a + or - with no term after it")
        sign = 1 if i == 0 or pieces[i - 1] == "+" else -1
        parts.append((sign, chunk))
    return parts


def parse_query(
    query: str, image_term: Callable[[str, float], QueryTerm | None] | None = None
) -> tuple[list[QueryTerm], list[QueryTerm]]:
    """A query string in the compact form -> (terms to add, terms to subtract)."""
    plus: list[QueryTerm] = []
    minus: list[QueryTerm] = []
    for sign, spec in split_query(query):
        (plus if sign > 0 else minus).append(QueryTerm.parse(spec, image_term))
    return plus, minus
