"""The default model works on the light install: an ARCH:TAG with a published ONNX export loads it without torch.

Only the hub is mocked: its download copies a folder in the Immich layout made by our own export of
the test model (random weights), which is what a published export looks like to the loader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import MODEL
from test_startup import ABSENT

from clipsearch.models import layout, load_encoder, model_id_for, parse_model_spec
from clipsearch.models.repository import export_dir
from clipsearch.models.spec import PUBLISHED_ONNX
from clipsearch.settings import DEFAULT_MODEL

# A light install (ABSENT), a mocked hub that copies SOURCE and records the repository asked for.
LIGHT_PROBE = (
    ABSENT + "import json, shutil, sys\n"
    "import huggingface_hub\n"
    "from pathlib import Path\n"
    "source, cache, spec = sys.argv[1:4]\n"
    "calls = []\n"
    "def fake_hub(repo_id, local_dir, allow_patterns, **kwargs):\n"
    "    calls.append(repo_id)\n"
    "    shutil.copytree(source, local_dir, dirs_exist_ok=True)\n"
    "    return str(local_dir)\n"
    "huggingface_hub.snapshot_download = fake_hub\n"
    "from clipsearch.errors import ModelError\n"
    "from clipsearch.models import load_encoder\n"
    "try:\n"
    "    e = load_encoder(spec, cache_dir=Path(cache))\n"
    "    out = {'model_id': e.model_id, 'runtime': e.runtime, 'folder': str(e.folder),\n"
    "           'dim': int(e.encode_texts(['a red circle']).shape[1])}\n"
    "except ModelError as exc:\n"
    "    out = {'error': str(exc)}\n"
    "out['calls'] = calls\n"
    "out['heavy'] = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip', 'onnx'))\n"
    "print(json.dumps(out))\n"
)


@pytest.fixture()
def published(model_cache, tmp_path):
    """A folder in the Immich layout, as the hub would serve it: our export without our marker."""
    folder = tmp_path / "published"
    shutil.copytree(load_encoder(MODEL, cache_dir=model_cache, runtime="onnx").folder, folder)
    (folder / layout.MARKER).unlink()
    return folder


def _light(source, cache, spec, offline: bool = False) -> dict:
    args = [sys.executable, "-c", LIGHT_PROBE, str(source), str(cache), spec]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env(offline))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _env(offline: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSEARCH_")}
    return env | {"HF_HUB_OFFLINE": "1" if offline else "0"}


def test_the_default_has_a_published_export_and_the_table_names_open_clip_weights():
    import open_clip

    assert DEFAULT_MODEL == "ViT-B-32:laion2b_s34b_b79k"
    assert PUBLISHED_ONNX[DEFAULT_MODEL] == "immich-app/ViT-B-32__laion2b-s34b-b79k"
    known = {f"{arch}:{tag}" for arch, tag in open_clip.list_pretrained()}
    assert set(PUBLISHED_ONNX) <= known
    assert all(repo.startswith("immich-app/") for repo in PUBLISHED_ONNX.values())


def test_without_torch_the_default_loads_its_published_export_under_the_same_id(published, tmp_path):
    cache = tmp_path / "cache"
    first = _light(published, cache, DEFAULT_MODEL)
    assert first["calls"] == ["immich-app/ViT-B-32__laion2b-s34b-b79k"], first
    assert first["model_id"] == DEFAULT_MODEL == model_id_for(DEFAULT_MODEL)
    assert first["runtime"] == "onnx" and first["heavy"] == []
    assert first["folder"] == str(cache / "hub" / "immich-app--ViT-B-32__laion2b-s34b-b79k")
    again = _light(published, cache, DEFAULT_MODEL)
    assert again["calls"] == [] and again["folder"] == first["folder"], "downloaded once"


def test_with_torch_the_default_is_exported_locally_under_the_same_id(published, tmp_path, monkeypatch):
    import huggingface_hub

    from clipsearch.models import export

    exported = []

    def fake_export(parsed, spec, out, weights_cache):  # the real export would download the weights
        exported.append((spec, out))
        shutil.copytree(published, out)
        return out

    def no_hub(*args, **kwargs):
        raise AssertionError("with torch, the published export is not downloaded")

    monkeypatch.setattr(export, "export_model", fake_export)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    encoder = load_encoder(DEFAULT_MODEL, cache_dir=tmp_path, runtime="onnx")
    target = export_dir(parse_model_spec(DEFAULT_MODEL), tmp_path)
    assert exported == [(DEFAULT_MODEL, target)] and encoder.folder == target
    assert encoder.model_id == DEFAULT_MODEL


def test_without_torch_an_unpublished_arch_tag_says_what_to_install(published, tmp_path):
    said = _light(published, tmp_path / "cache", "ViT-B-32-256:datacomp_s34b_b86k")
    assert said["calls"] == [] and "\n" not in said["error"], said
    assert "pip install 'clipsearch[torch]'" in said["error"] and "ONNX" in said["error"]
    assert DEFAULT_MODEL in said["error"]
    assert not (tmp_path / "cache").exists()


def test_offline_without_torch_the_default_fails_in_one_line(published, tmp_path):
    said = _light(published, tmp_path / "cache", DEFAULT_MODEL, offline=True)
    assert said["calls"] == [] and "\n" not in said["error"], said
    assert "HF_HUB_OFFLINE" in said["error"] and "immich-app/ViT-B-32__laion2b-s34b-b79k" in said["error"]
