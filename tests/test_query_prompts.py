"""Query prompt ensembling: the model's recorded default, --raw / --prompts, and the vectors it builds.

On the bundled model (its record says off: bench/prompts.py measured no gain worth the cost) and on a
copy of its checkpoint whose record says on, through the real CLI; the query vector of a combined
query is checked term by term against `clipsearch tag`'s ensembling code.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import ok, run_cli

from clipsearch.models import BUNDLED_DIR, bundled_models, load_encoder
from clipsearch.models.checkpoint import CONFIG_NAME
from clipsearch.models.prompts import GENERIC, RECORD_KEY, query_prompts
from clipsearch.search import QueryTerm, SearchRequest, SearchService
from clipsearch.search.tagging import label_embeddings
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.synthetic import generate_corpus

_SEED = 6161  # not a seed training, the model card, the demo or other tests use
_N = 60


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    if "shapes-mini" not in bundled_models():
        pytest.skip("the bundled model is not installed")
    root = tmp_path_factory.mktemp("prompts")
    generate_corpus(root / "photos", _N, seed=_SEED, split="heldout")
    ok(run_cli("--home", root / "store", "index", root / "photos", "--model", "shapes-mini", "--device", "cpu"))
    return root


def query(root, *args) -> dict:
    return json.loads(ok(run_cli("--home", root / "store", "query", *args, "--json", "--no-server")).stdout)


def _ranked(result: dict) -> list[tuple[int, float]]:
    return [(hit["id"], hit["score"]) for hit in result["results"]]


def test_the_bundled_models_record_is_off_and_prompts_force_it_on(shapes):
    recorded = query_prompts("shapes-mini")
    assert "bench/prompts.py" in recorded.basis, (
        "shapes-mini's open_clip_config.json has no query_prompts record: after retraining it, run "
        "`bench/prompts.py --record` (its default must follow that benchmark) and update this test's expectation"
    )
    assert recorded.default is False and recorded.templates
    plain = query(shapes, "a red circle")
    assert plain["prompts"] == {"used": False, "templates": [], "model_default": False}
    assert query(shapes, "a red circle", "--raw") == plain
    prompted = query(shapes, "a red circle", "--prompts")
    assert prompted["prompts"] == {"used": True, "templates": list(recorded.templates), "model_default": False}
    assert _ranked(prompted) != _ranked(plain)  # the scores at least move


def test_a_model_recorded_on_uses_prompts_unless_raw(shapes, tmp_path):
    copy = tmp_path / "shapes-on"
    shutil.copytree(BUNDLED_DIR / "shapes-mini", copy, ignore=shutil.ignore_patterns("onnx"))
    config = json.loads((copy / CONFIG_NAME).read_text())
    config["clipsearch"][RECORD_KEY] = {"default": True, "templates": ["a photo of {}"], "basis": "test"}
    (copy / CONFIG_NAME).write_text(json.dumps(config))
    # Same name and weights: the same model id, so it queries the store indexed with shapes-mini.
    model = ("--model", str(copy), "--runtime", "torch", "--device", "cpu")
    default = query(shapes, "a red circle", *model)
    assert default["prompts"] == {"used": True, "templates": ["a photo of {}"], "model_default": True}
    assert _ranked(query(shapes, "a red circle", *model, "--prompts")) == _ranked(default)
    raw = query(shapes, "a red circle", *model, "--raw")
    assert raw["prompts"]["used"] is False and _ranked(raw) != _ranked(default)
    # An image alone has no text to prompt.
    image = sorted((shapes / "photos").glob("*.png"))[0]
    assert query(shapes, "--image", image, *model)["prompts"]["used"] is False


def test_prompts_apply_per_text_term_and_leave_image_terms_alone(shapes):
    store = Store.open(Settings.from_env(shapes / "store"))
    encoder = load_encoder("shapes-mini", device="cpu")
    service = SearchService(store, encoder, store.vector_index()[0])
    ensemble = service.prompts.ensemble
    image = sorted((shapes / "photos").glob("*.png"))[0]
    from PIL import Image

    picture = Image.open(image).convert("RGB")
    request = SearchRequest(text="a red circle - 0.5:blue", plus=(QueryTerm(image=picture, weight=2.0),), raw=False)
    got = service.query_vector(request, [])
    red, blue = label_embeddings(encoder, ["a red circle", "blue"], ensemble)
    expected = red - 0.5 * blue + 2.0 * encoder.encode_image(picture)
    np.testing.assert_allclose(got, expected / np.linalg.norm(expected), atol=1e-5)
    raw = service.query_vector(SearchRequest(text="a red circle", raw=True), [])
    np.testing.assert_allclose(raw, encoder.encode_text("a red circle"), atol=1e-5)


def test_models_without_a_record_get_the_generic_templates_off():
    assert query_prompts("random:cs-tiny") == GENERIC
    assert query_prompts("ViT-B-32:laion2b_s34b_b79k") == GENERIC
    assert GENERIC.default is False and all(t.count("{}") == 1 for t in GENERIC.templates)
