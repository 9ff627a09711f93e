"""HTTP parameters -> SearchRequest, driven by the request's own fields.

Every field of SearchRequest is a parameter under its own name (plus the short aliases below),
typed from the dataclass's annotations; a field added to SearchRequest is accepted here without
another line, and a new type needs one converter. Query strings, JSON bodies and multipart
form fields all go through `build_request`.

Query terms arrive as text only: `q` may use the compact form (`2:cat + snow - people`), and
`plus`/`minus` (repeatable) take `WEIGHT:TEXT`; an example image is an upload, never a path.
`q` is split into terms exactly as `clipsearch query` splits its TEXT, so both rank alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from clipsearch.errors import QueryError
from clipsearch.search import QueryTerm, SearchRequest, parse_query

# Public names for fields whose Python names are long or internal.
ALIASES = {"q": "text", "after": "taken_after", "before": "taken_before"}
# Fields that never come from parameters: the uploaded file, and the id in /api/images/{id}/similar.
NOT_PARAMETERS = frozenset({"image", "image_id"})


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def _to_datetime(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).strip())


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"not a whole number: {value!r}")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if number != number:
        raise ValueError("not a number: nan")
    return number


def _to_str(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"not text: {value!r}")
    return str(value)


def _to_term(value: Any) -> QueryTerm:
    return QueryTerm.parse(_to_str(value))  # no image reader: a term is text


CONVERTERS: dict[type, Callable[[Any], Any]] = {
    QueryTerm: _to_term,
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    datetime: _to_datetime,
    date: lambda v: date.fromisoformat(str(v).strip()),
}
TYPE_NAMES = {
    QueryTerm: "string",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    datetime: "string",
    date: "string",
}


@dataclasses.dataclass(frozen=True)
class Param:
    name: str  # as sent over HTTP
    field: str  # SearchRequest's field
    base: type  # the element type
    many: bool  # a tuple/list field: repeated parameters or a JSON array


def _unwrap(hint: Any) -> tuple[type | None, bool]:
    """(element type, is a sequence) of an annotation like `int`, `str | None`, `tuple[str, ...]`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _unwrap(args[0]) if len(args) == 1 else (None, False)
    if origin in (tuple, list, frozenset, set):
        base, _ = _unwrap(args[0]) if args else (None, False)
        return base, True
    return (hint, False) if hint in CONVERTERS else (None, False)


def _params() -> dict[str, Param]:
    hints = typing.get_type_hints(SearchRequest)
    out: dict[str, Param] = {}
    public = {field: name for name, field in ALIASES.items()}
    for f in dataclasses.fields(SearchRequest):
        if f.name in NOT_PARAMETERS:
            continue
        base, many = _unwrap(hints[f.name])
        if base is None:
            continue  # a type no front end can send as text (e.g. a decoded image)
        param = Param(public.get(f.name, f.name), f.name, base, many)
        out[param.name] = param
        out[f.name] = param  # the field's own name works too
    return out


PARAMS = _params()


def build_request(values: Iterable[tuple[str, Any]], **fixed: Any) -> SearchRequest:
    """A validated SearchRequest from (name, value) pairs; `fixed` sets fields the route decides.

    Raises QueryError (HTTP 400) for unknown names, repeats of single values and bad values.
    """
    fields: dict[str, Any] = {}
    for name, value in values:
        param = PARAMS.get(name)
        if param is None:
            raise QueryError(f"unknown parameter {name!r}; known: {', '.join(sorted(public_names()))}")
        fields.setdefault(param.field, []).extend(value if isinstance(value, list) else [value])
    kwargs = dict(fixed)
    for field, raw in fields.items():
        param = next(p for p in PARAMS.values() if p.field == field)
        if not param.many and len(raw) > 1:
            raise QueryError(f"parameter {param.name!r} was given {len(raw)} times; give it once")
        converted = [_convert(param, v) for v in raw if not (v is None or v == "")]
        if param.many:
            kwargs[field] = tuple(converted)
        elif converted:
            kwargs[field] = converted[0]
    request = SearchRequest(**_split_text(kwargs))
    request.validate()
    return request


def _split_text(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`q`'s terms first in plus/minus, as the CLI orders them (the same terms, summed in the same order)."""
    text = kwargs.pop("text", None)
    if text is None or not text.strip():
        return kwargs
    plus, minus = parse_query(text)
    return {**kwargs, "plus": (*plus, *kwargs.get("plus", ())), "minus": (*minus, *kwargs.get("minus", ()))}


def _convert(param: Param, value: Any) -> Any:
    try:
        return CONVERTERS[param.base](value)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"parameter {param.name!r}: {exc}") from exc


def public_names() -> list[str]:
    return sorted({p.name for p in PARAMS.values()})


def openapi_parameters() -> list[dict]:
    """The query-string parameters of GET /api/search, for the OpenAPI page (/docs)."""
    out = []
    for name in public_names():
        param = PARAMS[name]
        schema: dict = {"type": TYPE_NAMES.get(param.base, "string")}
        if param.base in (datetime, date):
            schema["format"] = "date-time" if param.base is datetime else "date"
        if param.many:
            schema = {"type": "array", "items": schema}
        alias = f" (field `{param.field}`)" if param.field != name else ""
        out.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": f"SearchRequest.{param.field}{alias}",
            }
        )
    return out
