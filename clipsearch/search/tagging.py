"""Zero-shot tags (CLIP's zero-shot classifier, Radford et al. 2021, section 3.1.4).

Each label becomes a text embedding: its prompts ("a photo of a {}", ...) are embedded, normalised
and averaged (prompt ensembling), then renormalised. An image's label probabilities are the
softmax of 100 x its cosine with each label (CLIP's learned temperature is ~100); the labels whose
probability reaches the threshold are its tags, stored with that probability as the score.

The label embeddings are kept with the label set in the catalog, so an index run tags new images
with no model loaded: tagging is vector arithmetic on the stored image vectors.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clipsearch.catalog import Catalog
from clipsearch.errors import QueryError, StoreError
from clipsearch.models import Encoder

# The paper's ensembling, trimmed to prompts that suit any subject; measured on the bundled model
# in docs/model-card.md ("Zero-shot tags").
DEFAULT_PROMPTS = ("a photo of a {}.", "a picture of a {}.", "a {}.", "{}")
DEFAULT_THRESHOLD = 0.5
LOGIT_SCALE = 100.0
CHUNK = 20_000


@dataclass(frozen=True)
class LabelSet:
    labels: tuple[str, ...]
    prompts: tuple[str, ...]
    threshold: float
    model_id: str
    embeddings: np.ndarray  # (len(labels), dim) float32, L2-normalised

    @classmethod
    def build(
        cls, encoder: Encoder, labels: list[str], prompts: list[str] | None = None, threshold: float | None = None
    ) -> LabelSet:
        labels = _clean_labels(labels)
        prompts = list(prompts or DEFAULT_PROMPTS)
        for prompt in prompts:
            if prompt.count("{}") != 1:
                raise QueryError(f"the prompt {prompt!r} needs exactly one {{}} where the label goes")
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        if not 0 <= threshold <= 1:
            raise QueryError(f"the threshold is a probability between 0 and 1 (got {threshold})")
        return cls(
            tuple(labels), tuple(prompts), threshold, encoder.model_id, label_embeddings(encoder, labels, prompts)
        )

    def to_json(self) -> str:
        data = base64.b64encode(np.ascontiguousarray(self.embeddings, dtype=np.float32).tobytes()).decode()
        return json.dumps(
            {
                "labels": list(self.labels),
                "prompts": list(self.prompts),
                "threshold": self.threshold,
                "model_id": self.model_id,
                "embeddings": data,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> LabelSet:
        d = json.loads(raw)
        vectors = np.frombuffer(base64.b64decode(d["embeddings"]), dtype=np.float32).reshape(len(d["labels"]), -1)
        return cls(tuple(d["labels"]), tuple(d["prompts"]), float(d["threshold"]), d["model_id"], vectors.copy())

    def classify(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (n, labels), tag mask (n, labels)) for image vectors."""
        logits = LOGIT_SCALE * (vectors @ self.embeddings.T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs, probs >= self.threshold


def _clean_labels(labels: list[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in labels:
        label = " ".join(raw.split())
        if label and label not in cleaned:
            cleaned.append(label)
    if len(cleaned) < 2:
        raise QueryError("give at least two labels to choose between, e.g. --labels beach,snow,city")
    return cleaned


def label_embeddings(encoder: Encoder, labels: list[str], prompts: list[str]) -> np.ndarray:
    """One L2-normalised vector per label: the mean of its normalised prompt embeddings."""
    texts = [prompt.replace("{}", label) for label in labels for prompt in prompts]
    vectors = np.asarray(encoder.encode_texts(texts), dtype=np.float32).reshape(len(labels), len(prompts), -1)
    vectors /= np.linalg.norm(vectors, axis=2, keepdims=True)
    mean = vectors.mean(axis=1)
    out: np.ndarray = (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)
    return out


def _tags_for(label_set: LabelSet, ids: np.ndarray, vectors: np.ndarray) -> list[tuple[int, str, float]]:
    probs, mask = label_set.classify(vectors)
    rows, cols = np.nonzero(mask)
    return [(int(ids[r]), label_set.labels[c], float(probs[r, c])) for r, c in zip(rows, cols, strict=True)]


def tag_all(catalog: Catalog, label_set: LabelSet, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Tag every image with a new label set (replacing any earlier tags); returns counts per label."""
    _check_model(catalog, label_set)
    seq = catalog.facts.current_seq()
    tags: list[tuple[int, str, float]] = []
    for ids, vectors in catalog.vectors.changed(0, seq, chunk=CHUNK):
        tags += _tags_for(label_set, ids, vectors)
        if progress:
            progress(len(ids))
    catalog.tags.replace(label_set.to_json(), tags, seq)
    return catalog.tags.counts()


def tag_new(catalog: Catalog) -> int:
    """Tag images added or re-embedded since the last tagging (no-op without a label set); how many."""
    raw = catalog.tags.label_set()
    if raw is None:
        return 0
    label_set = LabelSet.from_json(raw)
    _check_model(catalog, label_set)
    after, seq = catalog.tags.watermark(), catalog.facts.current_seq()
    if seq <= after:
        return 0
    seen: list[int] = []
    tags: list[tuple[int, str, float]] = []
    for ids, vectors in catalog.vectors.changed(after, seq, chunk=CHUNK):
        seen += ids.tolist()
        tags += _tags_for(label_set, ids, vectors)
    catalog.tags.update(seen, tags, seq)
    return len(seen)


def stored_label_set(catalog: Catalog) -> LabelSet | None:
    raw = catalog.tags.label_set()
    return LabelSet.from_json(raw) if raw else None


def _check_model(catalog: Catalog, label_set: LabelSet) -> None:
    model = catalog.facts.model()
    if model is not None and model.model_id != label_set.model_id:
        raise StoreError(
            f"the tags' labels were embedded with {label_set.model_id}, not the store's {model.model_id}; "
            f"run `clipsearch tag --labels ...` again"
        )
