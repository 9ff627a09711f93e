"""Multilingual open_clip models (an XLM-RoBERTa text tower) end to end, offline.

Only the hub is mocked: tests/hf_fixtures.py writes xlm-roberta-base's config (its real sizes) and a
locally trained SentencePiece-style tokenizer into a hub cache that transformers reads with
HF_HUB_OFFLINE. Weights are random (`random:xlm-roberta-base-ViT-B-32`, the real architecture), or,
for the tests about plumbing through index and query, a tiny model of the same kind (2-layer
XLM-RoBERTa, 2-layer ViT) whose image projection is solved so that six planted images embed exactly
where six queries in six scripts do: the store must rank each one first for its own query.
The real sizes are loaded once, in this process (about 2.3 GB); index and query run on the tiny one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ok, pattern_image, run_cli
from hf_fixtures import BOS, EOS, PAD, QUERIES, TINY_REPO, UNK, build_hub_cache
from PIL import Image
from test_startup import ABSENT

from clipsearch.errors import ModelError
from clipsearch.models import load_encoder, parse_model_spec
from clipsearch.models.repository import export_dir

ARCH = "xlm-roberta-base-ViT-B-32"
PRETRAINED = f"{ARCH}:laion5b_s13b_b90k"


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory):
    pytest.importorskip(
        "transformers", reason="open_clip's Hugging Face text towers need transformers (the torch extra)"
    )
    return build_hub_cache(tmp_path_factory.mktemp("hf") / "hub")


@pytest.fixture
def hub(hub_cache, monkeypatch):
    """The fake hub, for this process (huggingface_hub read its variables at import) and subprocesses."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache


# -- the real architecture, random weights ----------------------------------------------------------


def test_xlm_roberta_base_tokenizes_every_script_and_embeds_them_apart(hub):
    encoder = load_encoder(f"random:{ARCH}", device="cpu")  # runtime auto: the ONNX path hands it to torch
    assert (encoder.runtime, encoder.dim, encoder.context_length) == ("torch", 512, 77)
    texts = list(QUERIES.values())
    tokens = encoder.tokenizer(texts).tolist()
    assert [len(row) for row in tokens] == [77] * len(texts)
    for row, text in zip(tokens, texts, strict=True):
        n = encoder.count_tokens(text)
        assert 3 <= n < 77, (text, n)
        assert row[0] == BOS and row[n - 1] == EOS and set(row[n:]) == {PAD} and UNK not in row[:n], (text, row)
    assert len({tuple(row) for row in tokens}) == len(texts)  # no script collapses to the same ids

    vectors = encoder.encode_texts(texts)
    assert vectors.shape == (len(texts), 512) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = vectors @ vectors.T
    assert cosines[~np.eye(len(texts), dtype=bool)].max() < 0.9999  # random weights, but distinct inputs
    np.testing.assert_allclose(encoder.encode_texts(texts[::-1])[::-1], vectors, atol=1e-5)  # stable
    images = encoder.encode_images(np.zeros((2, 224, 224, 3), dtype=np.uint8))
    assert images.shape == (2, 512) and np.isfinite(images).all()


# -- a tiny model of the same kind, planted -----------------------------------------------------------


def _tiny_checkpoint(folder, hub_cache):
    """A 2-layer XLM-RoBERTa + 2-layer ViT checkpoint folder with random weights (open_clip's local-dir)."""
    import torch
    from open_clip.model import CustomTextCLIP

    from clipsearch.imaging import PreprocessConfig
    from clipsearch.models.checkpoint import save_checkpoint

    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {
            "hf_model_name": TINY_REPO,
            "hf_tokenizer_name": TINY_REPO,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
        },
    }
    torch.manual_seed(0)
    model = CustomTextCLIP(cfg["embed_dim"], cfg["vision_cfg"], {**cfg["text_cfg"], "hf_model_pretrained": False})
    preprocess = PreprocessConfig.from_dict({"size": 64, "mean": (0.48, 0.46, 0.41), "std": (0.27, 0.26, 0.28)})
    save_checkpoint(model, cfg, preprocess, folder, metadata={"name": "xlmr-tiny-planted"})
    # open_clip reads a local-dir model's tokenizer from the folder itself.
    snapshot = next((hub_cache / f"models--{TINY_REPO.replace('/', '--')}" / "snapshots").iterdir())
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((snapshot / name).read_bytes())
    return model, cfg, preprocess


def _plant(folder, photos, hub_cache) -> dict[str, str]:
    """Solve both towers' projections: query i embeds as the i-th unit vector, planted image i exactly there,
    distractors orthogonal to every query. The transformers and the tokenizer stay as they are (random):
    the solve is exact only if the tokenizer and the text tower tell the six scripts apart."""
    import torch

    from clipsearch.models.checkpoint import save_checkpoint

    model, cfg, preprocess = _tiny_checkpoint(folder, hub_cache)
    encoder = load_encoder(str(folder), device="cpu", runtime="torch")
    planted = {key: f"planted-{key}.png" for key in QUERIES}
    names = [*planted.values(), *(f"other-{i}.png" for i in range(6))]
    for i, name in enumerate(names):
        pattern_image(700 + i, size=(96, 80)).save(photos / name)
    pixels = np.stack([encoder.preprocess(Image.open(photos / n)) for n in names])
    with torch.no_grad():  # the features before each projection
        encoder.model.text.proj = torch.nn.Identity()
        pooled = encoder.model.encode_text(encoder.tokenizer(list(QUERIES.values())), normalize=False).numpy()
        encoder.model.visual.proj.data = torch.eye(cfg["vision_cfg"]["width"])
        features = encoder.model.encode_image(encoder.normalise_pixels(pixels), normalize=False).numpy()
    dim = cfg["embed_dim"]
    targets = np.eye(dim)[: len(QUERIES)]
    others = np.random.default_rng(0).standard_normal((6, dim))
    others[:, : len(QUERIES)] = 0
    wanted = np.concatenate([targets, others / np.linalg.norm(others, axis=1, keepdims=True)])
    text_proj = np.linalg.lstsq(pooled.astype(np.float64), targets, rcond=None)[0]  # (width, dim)
    image_proj = np.linalg.lstsq(features.astype(np.float64), wanted, rcond=None)[0]
    with torch.no_grad():
        model.text.proj.weight.data = torch.from_numpy(text_proj.T.astype(np.float32).copy())
        model.visual.proj.data = torch.from_numpy(image_proj.astype(np.float32))
    save_checkpoint(model, cfg, preprocess, folder, metadata={"name": "xlmr-tiny-planted"})
    return planted


def test_non_latin_queries_rank_their_planted_images_first(hub, tmp_path):
    folder, photos = tmp_path / "xlmr-tiny", tmp_path / "photos"
    photos.mkdir()
    planted = _plant(folder, photos, hub)
    ok(run_cli("index", photos, "--model", folder))
    # Torch runs it directly: no ONNX export was tried (it would fail its check and leave a marker).
    target = export_dir(parse_model_spec(str(folder)), Path(os.environ["CLIPSEARCH_MODEL_CACHE"]))
    assert not target.exists() and not target.with_name(target.name + ".failed.json").exists()

    def top(query: str, k: int = 3) -> list[str]:
        result = json.loads(ok(run_cli("query", query, "-k", k, "--json", "--no-server")).stdout)
        assert [t["value"] for t in result["terms"]] == [t.strip() for t in query.split(" + ")]
        scores[query] = [hit["score"] for hit in result["results"]]
        return [os.path.basename(hit["path"]) for hit in result["results"]]

    scores: dict[str, list[float]] = {}
    for key, query in QUERIES.items():
        ranked = top(query)
        assert ranked[0] == planted[key] and scores[query][0] > 0.99 > 0.01 > scores[query][1], (key, ranked, scores)
        assert top(query) == ranked  # the same answer twice
    # A combined query of two scripts brings both planted images to the top.
    both = top(f"{QUERIES['japanese']} + {QUERIES['emoji']}", 2)
    assert sorted(both) == sorted([planted["japanese"], planted["emoji"]])


# -- what a missing piece says ---------------------------------------------------------------------


def test_offline_without_the_text_towers_files_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as caught:
        load_encoder(f"random:{ARCH}", device="cpu")
    said = str(caught.value)
    assert "\n" not in said and "xlm-roberta-base" in said and "Hugging Face hub" in said, said


LIGHT_PROBE = ABSENT + (
    "from clipsearch.errors import ModelError\n"
    "from clipsearch.models import load_encoder\n"
    "try:\n"
    f"    load_encoder({PRETRAINED!r})\n"
    "except ModelError as exc:\n"
    "    print(exc)\n"
)


def test_the_light_install_says_what_a_multilingual_model_needs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSEARCH_")}
    env |= {"CLIPSEARCH_MODEL_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LIGHT_PROBE], capture_output=True, text=True, env=env, timeout=120)
    said = done.stdout.strip()
    assert done.returncode == 0 and said.count("\n") == 0, done.stderr[-2000:]
    assert "torch runtime only" in said and "pip install 'clipsearch[torch]'" in said and "transformers" in said
    assert not (tmp_path / "cache").exists()


def test_models_lists_the_multilingual_models():
    info = json.loads(ok(run_cli("models", "--json")).stdout)
    rows = {row["spec"]: row for row in info["open_clip"]}
    assert rows[PRETRAINED]["multilingual"] and rows[PRETRAINED]["runtime"] == "torch"
    assert rows[PRETRAINED]["text"] == "xlm-roberta-base" and rows[PRETRAINED]["embed_dim"] == 512
    assert not rows["ViT-B-32:laion2b_s34b_b79k"]["multilingual"]
    text = ok(run_cli("models")).stdout
    assert f"{PRETRAINED}" in text.split("multilingual (")[1]
