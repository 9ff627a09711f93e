"""Contrastive training: the loss, the cross-rank gather, data loading, and a real `clipsearch train` run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.imaging import PreprocessConfig
from clipsearch.metrics import recall_at_k
from clipsearch.models import bundled_models, load_encoder
from clipsearch.synthetic import generate_corpus, heldout_combinations, read_labels, seen_combinations
from clipsearch.synthetic.metrics import pair_precision
from clipsearch.training.data import load_dataset, read_pairs
from clipsearch.training.loss import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX, clamp_logit_scale, clip_loss, gather_features
from clipsearch.training.schedule import warmup_cosine


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLIPSEARCH_HOME", str(tmp_path / "home"))


def _hand_loss(img: np.ndarray, txt: np.ndarray, scale: float) -> float:
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    logits = scale * img @ txt.T

    def xent(rows):
        return float(np.mean([-(r[i] - np.log(np.exp(r).sum())) for i, r in enumerate(rows)]))

    return (xent(logits) + xent(logits.T)) / 2


def test_loss_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    img, txt = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    scale = torch.tensor(math.log(10.0))
    got = clip_loss(img, txt, scale).item()
    assert got == pytest.approx(_hand_loss(img.numpy(), txt.numpy(), 10.0), rel=1e-5)


def test_loss_is_symmetric_and_rewards_matching_pairs():
    gen = torch.Generator().manual_seed(1)
    img, txt = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    scale = torch.tensor(LOGIT_SCALE_INIT)
    assert clip_loss(img, txt, scale).item() == pytest.approx(clip_loss(txt, img, scale).item(), rel=1e-6)
    eye = torch.eye(6)
    assert clip_loss(eye, eye, torch.tensor(LOGIT_SCALE_MAX)).item() < 1e-3
    assert clip_loss(eye, eye.roll(1, 0), torch.tensor(LOGIT_SCALE_MAX)).item() > 10


def test_temperature_starts_at_one_over_0_07_and_is_clamped_at_100():
    assert math.exp(LOGIT_SCALE_INIT) == pytest.approx(1 / 0.07)
    scale = torch.nn.Parameter(torch.tensor(9.0))
    clamp_logit_scale(scale)
    assert math.exp(scale.item()) == pytest.approx(100.0)


def test_gather_is_identity_on_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_features(x) is x


_TWO_RANKS = textwrap.dedent(
    """
    import torch, torch.distributed as dist
    from clipsearch.training.loss import clip_loss, distributed_clip_loss
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    gen = torch.Generator().manual_seed(0)
    img, txt = torch.randn(8, 4, generator=gen), torch.randn(8, 4, generator=gen)
    scale = torch.tensor(2.0)
    local_img = img[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
    local_txt = txt[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
    loss = distributed_clip_loss(local_img, local_txt, scale)
    loss.backward()
    full_img, full_txt = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    ref = clip_loss(full_img, full_txt, scale)
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-5, (loss.item(), ref.item())
    assert torch.allclose(local_img.grad, full_img.grad[rank * 4:(rank + 1) * 4], atol=1e-6)
    assert torch.allclose(local_txt.grad, full_txt.grad[rank * 4:(rank + 1) * 4], atol=1e-6)
    dist.destroy_process_group()
    """
)


def test_two_gloo_ranks_see_the_global_batch(tmp_path):
    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        str(script),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_warmup_then_cosine():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0)


def test_recall_and_pair_precision():
    emb = np.eye(4, dtype=np.float32)
    assert recall_at_k(emb, emb, ks=(1,)) == {"recall@1": 1.0}
    assert recall_at_k(emb, emb[[1, 0, 2, 3]], ks=(1, 2)) == {"recall@1": 0.5, "recall@2": 1.0}

    def embed(texts):
        return np.stack([emb[0] if "red circle" in t else emb[1] for t in texts])

    colours, shapes = ["red", "red", "blue", "red"], ["circle", "square", "circle", "circle"]
    images = np.stack([emb[0], emb[0], emb[1], emb[0]])
    assert pair_precision(images, colours, shapes, [("red", "circle")], embed, k=3) == pytest.approx(2 / 3)


def test_bad_rows_and_unreadable_images_are_skipped(tmp_path):
    generate_corpus(tmp_path / "imgs", 3, seed=0)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    rows = [
        {"path": "imgs/00000.png", "caption": "a shape"},
        {"path": "imgs/00001.png"},
        {"caption": "no path"},
        {"path": "imgs/broken.png", "caption": "a broken file"},
        {"path": "imgs/missing.png", "caption": "gone"},
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    dataset, skipped = load_dataset(data, PreprocessConfig(32, (0.5,) * 3, (0.5,) * 3))
    assert len(dataset) == 1 and dataset.captions == [("a shape",)]
    reasons = {s.item: s.reason for s in skipped}
    assert reasons["pairs.jsonl:2"] == "row has no caption"
    assert reasons["pairs.jsonl:3"] == "row has no path"
    assert "not valid JSON" in reasons["pairs.jsonl:6"]
    assert "not a recognised image format" in reasons[str(tmp_path / "imgs" / "broken.png")]
    assert "cannot read file" in reasons[str(tmp_path / "imgs" / "missing.png")]


def test_csv_and_folder_sources(tmp_path):
    generate_corpus(tmp_path, 3, seed=0)
    (tmp_path / "00002.txt").unlink()
    pairs, skipped = read_pairs(tmp_path)
    assert [p.path.name for p in pairs] == ["00000.png", "00001.png"]
    assert skipped[0].reason == "no caption file 00002.txt"
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("path,caption\n00000.png,a thing\n00001.png,\n")
    pairs, skipped = read_pairs(csv_file)
    assert [(p.path.name, p.captions) for p in pairs] == [("00000.png", ("a thing",))]
    assert skipped[0].item == "pairs.csv:3"


def test_train_cli_lowers_loss_and_writes_a_loadable_checkpoint(tmp_path):
    generate_corpus(tmp_path / "train", 192, seed=1, size=64)
    generate_corpus(tmp_path / "held", 48, seed=2, split="heldout", size=64)
    out = tmp_path / "ckpt"
    args = [
        "train",
        str(tmp_path / "train"),
        "--out",
        str(out),
        "--arch",
        "cs-tiny",
        "--eval",
        str(tmp_path / "held"),
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--lr",
        "2e-3",
        "--seed",
        "3",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    meta = json.loads((out / "open_clip_config.json").read_text())["clipsearch"]
    history = meta["history"]
    assert len(history) == 4 and history[-1]["train_loss"] < history[0]["train_loss"] - 0.1
    assert {"recall@1", "recall@10", "shape_accuracy", "pair_precision@10_heldout"} <= set(meta["metrics"])
    assert meta["seed"] == 3 and "--arch cs-tiny" in meta["command"]
    encoder = load_encoder(str(out), device="cpu")
    assert encoder.preprocess_cfg.size == 32
    pixels = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    assert encoder.encode_images(pixels).shape == (2, encoder.dim)
    assert np.allclose(np.linalg.norm(encoder.encode_texts(["a red circle"]), axis=1), 1, atol=1e-4)

    tuned = tmp_path / "tuned"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(tmp_path / "train"),
            "--out",
            str(tuned),
            "--from",
            str(out),
            "--eval",
            str(tmp_path / "held"),
            "--epochs",
            "1",
            "--batch-size",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert load_encoder(str(tuned), device="cpu").dim == encoder.dim


def test_lock_image_trains_only_the_text_tower(tmp_path):
    """--lock-image (LiT): image embeddings of the start model stay exactly valid, text ones move."""
    generate_corpus(tmp_path / "train", 96, seed=1, size=64)
    generate_corpus(tmp_path / "held", 32, seed=2, split="heldout", size=64)
    start, tuned = tmp_path / "start", tmp_path / "tuned"
    common = ["--eval", str(tmp_path / "held"), "--batch-size", "32", "--device", "cpu", "--seed", "1"]
    first = CliRunner().invoke(
        app, ["train", str(tmp_path / "train"), "--out", str(start), "--arch", "cs-tiny", "--epochs", "1", *common]
    )
    assert first.exit_code == 0, first.output
    args = ["train", str(tmp_path / "train"), "--out", str(tuned), "--from", str(start), "--lock-image", "--lr", "1e-2"]
    result = CliRunner().invoke(app, [*args, "--epochs", "2", *common])
    assert result.exit_code == 0, result.output
    assert "image tower locked" in result.output
    meta = json.loads((tuned / "open_clip_config.json").read_text())["clipsearch"]
    assert meta["hyperparameters"]["lock_image"] is True and "--lock-image" in meta["command"]
    before, after = load_encoder(str(start), device="cpu"), load_encoder(str(tuned), device="cpu")
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(before.encode_images(pixels), after.encode_images(pixels))
    texts = ["a red circle", "two blue squares"]
    assert not np.allclose(before.encode_texts(texts), after.encode_texts(texts), atol=1e-3)


def test_train_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--arch", "cs-tiny"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output
    generate_corpus(tmp_path / "d", 4, seed=0)
    result = runner.invoke(
        app,
        ["train", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--arch", "cs-tiny", "--from", "random:cs-tiny"],
    )
    assert result.exit_code == 1 and "not both" in result.output
    result = runner.invoke(app, ["train", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--arch", "no-such-arch"])
    assert result.exit_code == 1 and "unknown architecture" in result.output


def test_demo_data_cli(tmp_path):
    result = CliRunner().invoke(
        app, ["demo-data", str(tmp_path / "c"), "--n", "5", "--seed", "9", "--split", "heldout"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "c").glob("*.png"))) == 5
    result = CliRunner().invoke(app, ["demo-data", str(tmp_path / "c"), "--split", "nope"])
    assert result.exit_code == 1 and "--split must be one of" in result.output


# A seed that neither training, the model card's evaluation nor the demo uses.
_E2E_SEED = 4242
# Floors for precision@5 of "a COLOUR SHAPE" queries run through `index` + `query`. The model card
# measures colour+shape precision@10 of 0.998 (seen pairs) and 1.0 (held-out pairs), and count-aware
# R-precision of 0.98 / 0.96, on 5,000 held-out images; these floors leave room for a small collection.
_SEEN_FLOOR = 0.9
_HELDOUT_COMBO_FLOOR = 0.8
_PER_QUERY_FLOOR = 0.6  # at least 3 of the top 5 for every single query


def _pairs_with_single_objects(labels: dict, minimum: int) -> list[tuple[str, str]]:
    """Pairs with at least `minimum` one-object pictures: "a red circle" asks for exactly one."""
    counts: dict = {}
    for row in labels.values():
        if row["count"] == 1:
            counts[(row["colour"], row["shape"])] = counts.get((row["colour"], row["shape"]), 0) + 1
    return sorted(pair for pair, n in counts.items() if n >= minimum)


def _query_names(runner, text: str, k: int) -> list[str]:
    result = runner.invoke(app, ["query", text, "-k", str(k), "--json"])
    assert result.exit_code == 0, result.output
    return [Path(hit["path"]).name for hit in json.loads(result.stdout)["results"]]


@pytest.mark.skipif("shapes-mini" not in bundled_models(), reason="the bundled model is not installed")
def test_bundled_model_finds_colour_and_shape_through_the_cli(tmp_path):
    photos = tmp_path / "photos"
    generate_corpus(photos, 1000, seed=_E2E_SEED, split="heldout")
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(photos), "--model", "shapes-mini", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    labels = read_labels(photos)
    precision = {}
    for colour, shape in _pairs_with_single_objects(labels, 5):
        top = _query_names(runner, f"a {colour} {shape}", 5)
        precision[(colour, shape)] = np.mean(
            [(labels[n]["colour"], labels[n]["shape"]) == (colour, shape) for n in top]
        )
    seen = [v for pair, v in precision.items() if pair in set(seen_combinations())]
    held = [v for pair, v in precision.items() if pair in set(heldout_combinations())]
    assert len(seen) >= 40 and len(held) >= 4, precision
    assert np.mean(seen) >= _SEEN_FLOOR, precision
    assert np.mean(held) >= _HELDOUT_COMBO_FLOOR, precision
    assert min(precision.values()) >= _PER_QUERY_FLOOR, precision
