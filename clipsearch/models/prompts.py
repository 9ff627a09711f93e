"""A model's query prompt templates, and whether queries use them unless told otherwise.

Prompt ensembling (Radford et al. 2021, section 3.1.4) embeds a text as the mean of its normalised
embeddings inside templates such as "a photo of {}."; a query is averaged with its raw text too.
Whether that helps depends on the model, so the choice is recorded with the model:

  a checkpoint folder (the bundled models included), in open_clip_config.json:
      "clipsearch": {"query_prompts": {"default": true, "templates": ["a picture of {}", ...],
                                       "basis": "why (the benchmark that decided it)"}}
  every other model (open_clip pretrained tags, ONNX folders, hub models, random weights):
      GENERIC_TEMPLATES, off by default (see GENERIC_BASIS).
"""

from __future__ import annotations

from dataclasses import dataclass

from clipsearch.errors import ModelError
from clipsearch.models.checkpoint import read_config
from clipsearch.models.spec import ModelSpec, parse_model_spec

# The paper's photo template, adapted to free-text queries (a query is a noun phrase, often with
# its own article, so "a photo of a {}" would say "a photo of a a dog").
GENERIC_TEMPLATES = ("a photo of {}.", "a picture of {}.", "an image of {}.")
GENERIC_BASIS = (
    "no measurement for this model: off by default. The paper's gains are for one-word class labels "
    "(ImageNet); free-text queries are already sentences, rclip, Immich and clip-retrieval embed them "
    "as typed, and the templates cost one text encoding each per query"
)
RECORD_KEY = "query_prompts"


@dataclass(frozen=True)
class QueryPrompts:
    templates: tuple[str, ...]  # each has one "{}" where the query text goes
    default: bool  # whether text terms use them when a request does not say
    basis: str  # why the default is what it is

    @property
    def ensemble(self) -> list[str]:
        """The raw text ("{}") and every template: a text term is the mean of their embeddings."""
        return ["{}", *self.templates]


GENERIC = QueryPrompts(GENERIC_TEMPLATES, False, GENERIC_BASIS)


def query_prompts(spec: str | ModelSpec | None) -> QueryPrompts:
    """The query prompts recorded with a model (GENERIC where nothing is recorded)."""
    if not spec:
        return GENERIC
    try:
        parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    except ModelError:
        return GENERIC  # e.g. a folder deleted since the store was indexed: the query fails elsewhere
    if parsed.kind not in ("bundled", "checkpoint") or parsed.path is None:
        return GENERIC
    record = read_config(parsed.path).get("clipsearch", {}).get(RECORD_KEY)
    if not isinstance(record, dict):
        return GENERIC
    templates = tuple(str(t) for t in record.get("templates") or GENERIC_TEMPLATES)
    for template in templates:
        if template.count("{}") != 1:
            raise ModelError(f"{parsed.path}: query prompt template {template!r} needs exactly one {{}}")
    return QueryPrompts(templates, bool(record.get("default", False)), str(record.get("basis", "")))
