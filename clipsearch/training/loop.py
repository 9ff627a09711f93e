"""The training run: data in memory, contrastive steps, per-epoch evaluation and checkpoints.

Library code: progress goes to a reporter callback, never to the console.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from clipsearch.errors import TrainingError
from clipsearch.models.checkpoint import save_checkpoint
from clipsearch.models.openclip import autocast_dtype, resolve_device
from clipsearch.training.batches import Batcher, TokenTable
from clipsearch.training.data import Dataset, Skipped, load_dataset
from clipsearch.training.distributed import DistInfo, barrier, init_distributed, shutdown
from clipsearch.training.evaluate import Scorer, evaluate_embeddings
from clipsearch.training.loss import clamp_logit_scale, distributed_clip_loss
from clipsearch.training.model import ModelBundle, from_arch, from_spec
from clipsearch.training.schedule import make_optimizer, make_scheduler


@dataclass
class TrainConfig:
    data: Path
    out: Path
    arch: Optional[str] = None
    from_model: Optional[str] = None
    eval_data: Optional[Path] = None
    epochs: int = 10
    batch_size: int = 128
    lr: Optional[float] = None  # default depends on scratch vs fine-tuning
    weight_decay: float = 0.2
    warmup: Optional[int] = None  # steps; default 5% of the run
    device: str = "auto"
    seed: int = 0
    workers: int = 1
    val_fraction: float = 0.05
    half: bool = False
    # Locked-image tuning (LiT, Zhai et al. 2022): the image tower stays as it is and only the text
    # tower and the temperature learn, against image embeddings computed once. Several times cheaper
    # per step, and the stored vectors of an index made with the starting model stay valid.
    lock_image: bool = False
    name: Optional[str] = None
    command: str = ""
    scorer: Optional[Scorer] = None  # extra held-out metrics (the CLI passes the synthetic world's)


@dataclass
class TrainEvent:
    kind: str  # data | start | step | epoch
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float = float("nan")
    images_per_s: float = 0.0
    lr: float = 0.0
    metrics: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class TrainResult:
    out: Path
    metrics: dict
    history: list[dict]
    skipped: list[Skipped]
    seconds: float


Reporter = Callable[[TrainEvent], None]


def _bundle(cfg: TrainConfig) -> ModelBundle:
    if cfg.arch and cfg.from_model:
        raise TrainingError("give either --arch (train from scratch) or --from (fine-tune), not both")
    if cfg.from_model:
        return from_spec(cfg.from_model)
    return from_arch(cfg.arch or "cs-tiny", cfg.seed)


def _split(dataset: Dataset, cfg: TrainConfig, pre, workers: int) -> tuple[Dataset, Dataset, list[Skipped]]:
    """Train set, eval set, and skipped eval items."""
    skipped: list[Skipped] = []
    if cfg.eval_data:
        evalset, skipped = load_dataset(cfg.eval_data, pre, workers)
        train = dataset
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(dataset))
        n_eval = min(2000, int(len(dataset) * cfg.val_fraction))
        if len(dataset) - n_eval < 2 or n_eval < 2:
            raise TrainingError(f"only {len(dataset)} usable images: too few to hold some out; pass --eval DATA")
        train, evalset = dataset.subset(sorted(order[n_eval:])), dataset.subset(sorted(order[:n_eval]))
    return train, evalset, skipped


@torch.no_grad()
def _embed_images(model, pixels: np.ndarray, pre, device) -> np.ndarray:
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(pixels), 512):
        x = torch.from_numpy(pixels[start : start + 512]).to(device).permute(0, 3, 1, 2).float().div_(255)
        out.append(model.encode_image((x - mean) / std, normalize=True).float().cpu())
    return torch.cat(out).numpy()


def _locked_image_features(model, train_set: Dataset, pre, report: Reporter, device) -> torch.Tensor:
    """Freeze the image tower and embed every training image once (its output can no longer change)."""
    for param in model.visual.parameters():
        param.requires_grad_(False)
    report(TrainEvent("data", message=f"image tower locked: embedding {len(train_set)} training images once"))
    model.eval()  # batch norm in inference mode, as the index will run it
    try:
        return torch.from_numpy(_embed_images(model, train_set.pixels, pre, device))
    finally:
        model.train()


def _text_embedder(model, tokenizer, device):
    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 512):
            tokens = tokenizer(list(texts[start : start + 512])).to(device)
            out.append(model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out).numpy()

    return embed


def evaluate_model(model, tokenizer, pre, evalset: Dataset, device, scorer: Scorer | None = None) -> dict:
    was_training = model.training
    model.eval()
    try:
        images = _embed_images(model, evalset.pixels, pre, device)
        captions = [c[0] for c in evalset.captions]
        embed = _text_embedder(model, tokenizer, device)
        return evaluate_embeddings(images, captions, list(evalset.paths), embed, scorer)
    finally:
        model.train(was_training)


def _autocast(device: torch.device):
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def _metadata(cfg, bundle, info, stats: dict) -> dict:
    return {
        "name": cfg.name or Path(cfg.out).name,
        "command": cfg.command,
        "seed": cfg.seed,
        "source": bundle.source,
        "hyperparameters": {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "global_batch_size": cfg.batch_size * info.world_size,
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "warmup_steps": cfg.warmup,
            "lock_image": cfg.lock_image,
        },
        "hardware": {
            "device": stats["device"],
            "world_size": info.world_size,
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        **{k: v for k, v in stats.items() if k != "device"},
    }


def train(cfg: TrainConfig, report: Optional[Reporter] = None) -> TrainResult:
    """Train or fine-tune a CLIP model and write a checkpoint to cfg.out after every epoch."""
    report = report or (lambda event: None)
    started = time.time()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    info = init_distributed(device.type)
    try:
        if device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        return _run(cfg, info, device, started, report if info.is_main else (lambda event: None))
    finally:
        shutdown(info)


def _prepare(cfg: TrainConfig, report: Reporter):
    bundle = _bundle(cfg)
    pre = bundle.preprocess_cfg
    report(TrainEvent("data", message=f"decoding images at {pre.size}x{pre.size}"))
    dataset, skipped = load_dataset(cfg.data, pre, cfg.workers)
    train_set, evalset, eval_skipped = _split(dataset, cfg, pre, cfg.workers)
    return bundle, train_set, evalset, skipped + eval_skipped


def _run(cfg: TrainConfig, info: DistInfo, device, started: float, report: Reporter) -> TrainResult:
    bundle, train_set, evalset, skipped = _prepare(cfg, report)
    for item in skipped:
        report(TrainEvent("skipped", message=f"skipping {item.item}: {item.reason}"))
    model = bundle.model.to(device).train()
    # Before the optimiser and the DDP wrapper are made: both must see the image tower frozen.
    features = (
        _locked_image_features(model, train_set, bundle.preprocess_cfg, report, device) if cfg.lock_image else None
    )
    global_batch = min(cfg.batch_size * info.world_size, len(train_set))
    local_batch = global_batch // info.world_size
    steps_per_epoch = len(train_set) // global_batch
    total = steps_per_epoch * cfg.epochs
    # Resolve defaults on a copy, so the checkpoint records the values actually used.
    cfg = replace(
        cfg,
        lr=cfg.lr if cfg.lr is not None else (5e-4 if cfg.from_model is None else 1e-5),
        warmup=cfg.warmup if cfg.warmup is not None else min(1000, max(1, total // 20)),
    )
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.warmup, total)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype(device) == torch.float16)
    wrapped = model
    if info.world_size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    tokens = TokenTable.build(train_set.captions, bundle.tokenizer)
    batcher = Batcher(train_set.pixels, tokens, bundle.preprocess_cfg, device, cfg.seed, features)
    history: list[dict] = []
    stats = {"device": str(device)}
    report(TrainEvent("start", total_steps=total, message=f"{len(train_set)} training images, {len(evalset)} held out"))
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        epoch_loss, step = _train_epoch(
            wrapped,
            model,
            batcher,
            optimizer,
            scheduler,
            scaler,
            device,
            epoch,
            step,
            total,
            (info, local_batch, global_batch, steps_per_epoch),
            report,
        )
        barrier(info)
        if info.is_main:
            metrics = evaluate_model(model, bundle.tokenizer, bundle.preprocess_cfg, evalset, device, cfg.scorer)
            history.append({"epoch": epoch, "train_loss": epoch_loss, **metrics})
            stats.update(_stats(cfg, train_set, evalset, skipped, history, started))
            save_checkpoint(
                model,
                bundle.model_cfg,
                bundle.preprocess_cfg,
                cfg.out,
                _metadata(cfg, bundle, info, stats),
                half=cfg.half,
            )
            report(TrainEvent("epoch", epoch=epoch, step=step, total_steps=total, loss=epoch_loss, metrics=metrics))
        barrier(info)
    final = history[-1] if history else {}
    return TrainResult(Path(cfg.out), final, history, skipped, time.time() - started)


def _stats(cfg, train_set, evalset, skipped, history, started) -> dict:
    return {
        "data": {
            "train": str(cfg.data),
            "train_images": len(train_set),
            "eval": str(cfg.eval_data) if cfg.eval_data else f"{cfg.val_fraction:.0%} of train data held out",
            "eval_images": len(evalset),
            "skipped": len(skipped),
        },
        "epochs_completed": len(history),
        "training_seconds": round(time.time() - started, 1),
        "metrics": history[-1] if history else {},
        "history": history,
    }


def _train_epoch(wrapped, model, batcher, optimizer, scheduler, scaler, device, epoch, step, total, shape, report):
    info, local_batch, global_batch, steps_per_epoch = shape
    order = batcher.epoch_order(epoch)
    losses, window, tick = [], [], time.time()
    for i in range(steps_per_epoch):
        start = i * global_batch + info.rank * local_batch
        images, texts = batcher.batch(order[start : start + local_batch])
        with _autocast(device):
            # With the image tower locked, `images` are its stored embeddings: only text runs forward.
            out = wrapped(image=None if batcher.features is not None else images, text=texts)
        image_features, text_features = (
            (out["image_features"], out["text_features"]) if isinstance(out, dict) else out[:2]
        )
        if batcher.features is not None:
            image_features = images
        loss = distributed_clip_loss(image_features, text_features, model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        clamp_logit_scale(model.logit_scale)
        step += 1
        losses.append(loss.item())
        window.append(loss.item())
        if len(window) == 10 or i == steps_per_epoch - 1:
            rate = len(window) * global_batch / max(1e-9, time.time() - tick)
            report(TrainEvent("step", epoch, step, total, float(np.mean(window)), rate, scheduler.get_last_lr()[0]))
            window, tick = [], time.time()
    return float(np.mean(losses)) if losses else float("nan"), step
