"""A synthetic captioned world of coloured shapes, for training and testing offline."""

from clipsearch.synthetic.captions import caption, captions
from clipsearch.synthetic.corpus import LABELS_NAME, generate_corpus, make_item, read_labels
from clipsearch.synthetic.draw import render
from clipsearch.synthetic.world import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    SIZES,
    SPLITS,
    Scene,
    heldout_combinations,
    sample_scene,
    seen_combinations,
)

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "LABELS_NAME",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "Scene",
    "caption",
    "captions",
    "generate_corpus",
    "heldout_combinations",
    "make_item",
    "read_labels",
    "render",
    "sample_scene",
    "seen_combinations",
]
