"""Contrastive (CLIP) training and fine-tuning, and held-out evaluation."""

from clipsearch.training.data import Dataset, Pair, Skipped, load_dataset, read_pairs
from clipsearch.training.loop import TrainConfig, TrainEvent, TrainResult, evaluate_model, train
from clipsearch.training.loss import clip_loss, distributed_clip_loss, gather_features

__all__ = [
    "Dataset",
    "Pair",
    "Skipped",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "clip_loss",
    "distributed_clip_loss",
    "evaluate_model",
    "gather_features",
    "load_dataset",
    "read_pairs",
    "train",
]
