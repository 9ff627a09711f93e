"""`clipsearch train` (contrastive training / fine-tuning) and `clipsearch demo-data` (synthetic corpus)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import cli_command, err
from clipsearch.errors import ConfigError

_SPLIT_HELP = "train: never contains the held-out colour+shape pairs; heldout: every pair, for evaluation."


def _command_line(data: Path, out: Path, options: dict) -> str:
    """The canonical command that reproduces this run, recorded in the checkpoint."""
    parts = ["clipsearch", "train", str(data), "--out", str(out)]
    for flag, value in options.items():
        if value is None or value is False:
            continue
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


class _ProgressBar:
    """Renders training events: a tqdm bar with loss and throughput, one line per epoch."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event) -> None:
        from tqdm import tqdm

        if event.kind in ("data", "skipped"):
            (tqdm.write if self.bar else err)(event.message)
        elif event.kind == "start":
            err(event.message)
            self.bar = tqdm(total=event.total_steps, unit="step", dynamic_ncols=True, leave=True)
        elif event.kind == "step" and self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.3f}", img_s=f"{event.images_per_s:.0f}")
        elif event.kind == "epoch":
            shown = ", ".join(f"{k} {v:.3f}" for k, v in event.metrics.items() if isinstance(v, float))
            (self.bar.write if self.bar else err)(f"epoch {event.epoch}: loss {event.loss:.3f}; held-out {shown}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@cli_command
def train_command(
    ctx: typer.Context,
    data: Path = typer.Argument(
        ..., help="Folder of images with same-named .txt captions, or a .csv/.jsonl of path,caption."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder to write (usable as --model OUT)."),
    from_model: Optional[str] = typer.Option(None, "--from", help="Fine-tune this model (any --model spec)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Train from scratch with this architecture config."),
    eval_data: Optional[Path] = typer.Option(
        None, "--eval", help="Held-out DATA scored each epoch (default: 5% of DATA)."
    ),
    epochs: int = typer.Option(10, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=2, help="Per-process batch (global = x processes)."),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Peak learning rate (default 5e-4 from scratch, 1e-5 fine-tuning)."
    ),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up steps (default 5% of the run)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes decoding images."),
    half: bool = typer.Option(False, "--half", help="Store the weights as float16 (half the size)."),
    lock_image: bool = typer.Option(
        False,
        "--lock-image",
        help="Keep the image tower fixed and train only the text tower (LiT): cheaper, and vectors "
        "indexed with the starting model stay valid.",
    ),
    name: Optional[str] = typer.Option(
        None, "--name", help="Model name recorded in the checkpoint (default: OUT's name)."
    ),
) -> None:
    """Train a CLIP model contrastively on captioned images (torchrun for several GPUs)."""
    from clipsearch.synthetic.metrics import scorer_for
    from clipsearch.training import TrainConfig, train

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {device!r}")
    options = {
        "--from": from_model,
        "--arch": arch,
        "--eval": eval_data,
        "--epochs": epochs,
        "--batch-size": batch_size,
        "--lr": lr,
        "--warmup": warmup,
        "--seed": seed,
        "--half": half,
        "--lock-image": lock_image,
        "--name": name,
    }
    cfg = TrainConfig(
        data=data,
        out=out,
        arch=arch,
        from_model=from_model,
        eval_data=eval_data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        device=device,
        seed=seed,
        workers=workers,
        half=half,
        lock_image=lock_image,
        name=name,
        command=_command_line(data, out, options),
        scorer=scorer_for(eval_data or data),
    )
    bar = _ProgressBar()
    try:
        result = train(cfg, bar)
    finally:
        bar.close()
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only the first process reports
    if result.skipped:
        err(f"{len(result.skipped)} items skipped (listed above)")
    typer.echo(f"wrote {result.out} after {result.seconds / 60:.1f} min; use it with --model {result.out}")


@cli_command
def demo_data_command(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Folder to write NNNNN.png + NNNNN.txt pairs into."),
    n: int = typer.Option(1000, "--n", min=1, help="How many images."),
    seed: int = typer.Option(0, "--seed"),
    split: str = typer.Option("train", "--split", help=_SPLIT_HELP),
    size: int = typer.Option(128, "--size", min=16, help="Image side in pixels."),
    workers: int = typer.Option(1, "--workers", min=1),
    captions: str = typer.Option(
        "v2",
        "--captions",
        help="Caption style: v2 also names each object of a multi-object scene; v1 always leads with the count "
        "(the bundled model's first training stage).",
    ),
) -> None:
    """Generate a captioned corpus of coloured shapes (itself a `clipsearch train` DATA folder)."""
    from clipsearch.synthetic import SPLITS, generate_corpus
    from clipsearch.synthetic.captions import CAPTION_STYLES

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if captions not in CAPTION_STYLES:
        raise ConfigError(f"--captions must be one of {', '.join(CAPTION_STYLES)}, not {captions!r}")
    generate_corpus(out, n, seed, split=split, size=size, workers=workers, style=captions)
    typer.echo(f"wrote {n} images with captions to {out} ({split} split, seed {seed})")
