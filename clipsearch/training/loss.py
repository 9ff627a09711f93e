"""CLIP's contrastive objective (Radford et al. 2021) and the cross-rank gather it needs.

The objective is open_clip's ClipLoss. Every rank must see the whole global batch as
negatives, so embeddings are gathered from all ranks here (ClipLoss then sees one global
batch); the local slice is put back as the tensor that carries gradients.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from open_clip.loss import ClipLoss

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)
_LOSS = ClipLoss()  # one process's form: the features it gets are already the global batch


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor over all ranks, keeping the gradient path to this rank's part.

    all_gather returns tensors without grad; replacing our own slice with the original
    tensor means each rank back-propagates through its local embeddings only, while the
    loss still uses every rank's embeddings as negatives.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    gathered = [torch.zeros_like(features) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, features.detach().contiguous())
    gathered[dist.get_rank()] = features
    return torch.cat(gathered, dim=0)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over cosine-similarity logits of matching (image, text) rows.

    Features are L2-normalised here; logit_scale is the log temperature (exp'd here).
    Row i of images matches row i of texts; every other row is a negative.
    """
    # In float32: under autocast the model's own normalisation ran in bf16/fp16.
    image_features = F.normalize(image_features.float(), dim=-1)
    text_features = F.normalize(text_features.float(), dim=-1)
    loss: torch.Tensor = _LOSS(image_features, text_features, logit_scale.exp())
    return loss


def distributed_clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """clip_loss over the global batch gathered from every rank (equals clip_loss on one rank)."""
    return clip_loss(gather_features(image_features), gather_features(text_features), logit_scale)


@torch.no_grad()
def clamp_logit_scale(logit_scale: torch.nn.Parameter) -> None:
    """Keep the temperature from growing past 100, as in the paper."""
    logit_scale.clamp_(0, LOGIT_SCALE_MAX)
