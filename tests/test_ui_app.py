"""The web page's logic through Streamlit's AppTest, against real indexed stores.

One store is indexed per module (random:cs-tiny) and shared by the read-only tests; tests
that change files on disk index their own. The page reads CLIPSEARCH_HOME like `clipsearch ui`.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from conftest import MODEL, index_json, make_exif, make_photos, ok, pattern_image, query_json, run_cli, save_image
from PIL import Image
from streamlit.testing.v1 import AppTest

from clipsearch.cli import ui_cmd
from clipsearch.errors import StoreError
from clipsearch.indexer.decode import content_hash as indexer_content_hash
from clipsearch.search import SearchService
from clipsearch.settings import Settings
from clipsearch.thumbnails import Thumbnails, content_hash

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
N_PLAIN = 14
N_IMAGES = N_PLAIN + 2
CAPTION = re.compile(r"^#(\d+) · score (-?\d+\.\d+)$")


def build_store(root: Path) -> tuple[Path, Path]:
    """A photo folder (14 plain + 2 with EXIF + 1 broken file) indexed into root/home."""
    photos, home = root / "photos", root / "home"
    make_photos(photos, N_PLAIN)
    save_image(
        pattern_image(501, size=(64, 48)),
        photos / "exif" / "rotated.jpg",
        make_exif(orientation=6, taken="2021:06:15 10:30:00", make="Canon", model="Canon EOS 5D"),
    )
    save_image(
        pattern_image(502, size=(64, 48)),
        photos / "exif" / "upright.jpg",
        make_exif(orientation=1, taken="2019:12:31 23:59:58", make="FUJIFILM", model="X-T3"),
    )
    (photos / "broken.jpg").write_bytes(b"this is not a picture")
    ok(run_cli("--home", home, "index", photos, "--model", MODEL))
    return photos, home


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> tuple[Path, Path]:
    return build_store(tmp_path_factory.mktemp("ui-store"))


@pytest.fixture
def store(shared_store, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.setenv("CLIPSEARCH_HOME", str(shared_store[1]))
    return shared_store


@pytest.fixture
def own_store(tmp_path, monkeypatch) -> tuple[Path, Path]:
    photos, home = build_store(tmp_path / "own")
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    return photos, home


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="q").input(text).run()
    assert not at.exception, at.exception
    return at


def exif_results(photos: Path) -> AppTest:
    """A page filtered to the two EXIF photos and searched."""
    at = start()
    at.sidebar.text_input(key="folder").input(str(photos / "exif")).run()
    return search(at, "a photo")


def grid(at: AppTest) -> list[tuple[int, float]]:
    """(rank, score) of every result card, in page order."""
    out = []
    for image in at.image:
        for caption in image.captions:
            m = CAPTION.match(caption)
            if m:
                out.append((int(m.group(1)), float(m.group(2))))
    return out


def names(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if re.fullmatch(r"[\w.-]+\.(jpg|png)", c.value)]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# -- searching ---------------------------------------------------------------------------------


def test_query_shows_scored_results_best_first_with_timing(store):
    at = search(start(), "a red square")
    cards = grid(at)
    assert len(cards) == N_IMAGES  # default page (24) holds the whole store
    assert [rank for rank, _ in cards] == list(range(1, N_IMAGES + 1))
    scores = [score for _, score in cards]
    assert scores == sorted(scores, reverse=True)
    assert re.search(rf"{N_IMAGES} results · search took \d+ ms", texts(at.caption))
    # Same ranking as the CLI: one search service behind both.
    cli = [Path(hit["path"]).name for hit in query_json("a red square", "-k", N_IMAGES)]
    assert names(at) == cli


def test_load_more_appends_the_next_page(store):
    at = start()
    at.selectbox(key="page_size").set_value(12).run()
    search(at, "a red square")
    assert [r for r, _ in grid(at)] == list(range(1, 13))
    assert "12 results so far" in texts(at.caption)
    at.button(key="more").click().run()
    assert not at.exception
    assert [r for r, _ in grid(at)] == list(range(1, N_IMAGES + 1))
    assert len(set(names(at))) == N_IMAGES
    assert not [b for b in at.button if b.key == "more"], "no more pages, so no 'load more'"
    cli = [Path(hit["path"]).name for hit in query_json("a red square", "-k", N_IMAGES)]
    assert names(at) == cli


def test_folder_filter(store):
    photos, _home = store
    at = exif_results(photos)
    assert sorted(names(at)) == ["rotated.jpg", "upright.jpg"]
    at.sidebar.text_input(key="folder").input(str(photos / "ex")).run()
    assert not grid(at), "a folder is not a name prefix: photos/ex must not match photos/exif"
    assert "No results" in texts(at.info)


def test_date_filters(store):
    at = start()
    at.sidebar.date_input(key="after").set_value(date(2021, 1, 1)).run()
    search(at, "a photo")
    assert names(at) == ["rotated.jpg"]
    at.sidebar.date_input(key="after").set_value(None)
    at.sidebar.date_input(key="before").set_value(date(2020, 1, 1)).run()
    assert names(at) == ["upright.jpg"]


def test_reversed_date_range_is_a_readable_error(store):
    at = start()
    at.sidebar.date_input(key="after").set_value(date(2022, 1, 1))
    at.sidebar.date_input(key="before").set_value(date(2020, 1, 1)).run()
    search(at, "a photo")
    assert "date range is reversed" in texts(at.error)
    assert not grid(at)


def test_more_like_this_and_min_score(store):
    at = search(start(), "a red square")
    third = names(at)[2]
    third_id = [b for b in at.button if b.label == "More like this"][2].key.split("-")[1]
    at.button(key=f"like-{third_id}").click().run()
    assert not at.exception
    assert at.text_input(key="q").value == "", "the text query gives way to the example"
    assert f"Showing images like {store[0] / third}" in texts(at.info)
    cards = grid(at)
    assert names(at)[0] == third and cards[0][1] == pytest.approx(1.0, abs=1e-3)
    assert len(cards) == N_IMAGES
    at.sidebar.slider(key="min_score").set_value(0.999).run()
    assert names(at) == [third]
    at.button(key="clear-example").click().run()
    assert not grid(at) and not at.info


def test_upload_an_example(store):
    photos, _home = store
    at = start()
    at.file_uploader[0].set_value(("query.jpg", (photos / "img004.jpg").read_bytes(), "image/jpeg")).run()
    assert not at.exception
    assert names(at)[0] == "img004.jpg"
    assert grid(at)[0][1] > 0.99
    at.file_uploader[0].set_value(("notes.png", b"plain text, not an image", "image/png")).run()
    assert "notes.png cannot be used as an example" in texts(at.error)


def test_open_a_result_shows_image_and_facts(store):
    photos, _home = store
    at = exif_results(photos)
    rotated = names(at).index("rotated.jpg")
    key = [b for b in at.button if b.label == "Open"][rotated].key
    at.button(key=key).click().run()
    assert not at.exception
    facts = texts(at.markdown)
    assert "Canon EOS 5D" in facts and "2021-06-15 10:30" in facts
    assert "48 × 64 px" in facts, "EXIF orientation 6 turns the 64x48 picture upright"
    assert str(photos / "exif" / "rotated.jpg") in texts(at.code)
    assert [b.label for b in at.download_button] == ["Download original"]
    at.button(key="close-open").click().run()
    assert not at.download_button


def test_sidebar_shows_store_status(store):
    at = start()
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert metrics == {"Images indexed": str(N_IMAGES), "Failed files": "1"}
    sidebar = texts(at.sidebar.markdown)
    assert MODEL in sidebar and "flat" in sidebar
    assert "broken.jpg" in texts(at.sidebar.caption)


def test_engine_loads_once_and_new_commits_appear(own_store, monkeypatch):
    photos, home = own_store
    opened = []
    real_open = SearchService.open.__func__
    monkeypatch.setattr(
        SearchService, "open", classmethod(lambda cls, *a, **kw: opened.append(1) or real_open(cls, *a, **kw))
    )
    first = search(start(), "a red square")
    assert len(grid(first)) == N_IMAGES
    make_photos(photos / "later", 3, seed=9, prefix="later")
    ok(run_cli("--home", home, "index", photos / "later"))
    second = search(start(), "a blue circle")  # another session, after an index run committed
    assert len(grid(second)) == N_IMAGES + 3
    assert {"later000.jpg", "later001.jpg", "later002.png"} <= set(names(second))
    assert {m.label: m.value for m in second.sidebar.metric}["Images indexed"] == str(N_IMAGES + 3)
    assert len(opened) == 1, "model, catalog and index load once per server process"


def test_search_on_each_catalog_backend(backend, tmp_path, monkeypatch):
    _photos, home = build_store(tmp_path / "b")  # into DATABASE_URL when the backend is PostgreSQL
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    at = search(start(), "a red square")
    assert len(grid(at)) == N_IMAGES
    assert {m.label: m.value for m in at.sidebar.metric}["Images indexed"] == str(N_IMAGES)
    if backend.startswith("postgresql"):
        assert "Catalog: `postgresql" in texts(at.sidebar.caption)


# -- stores that cannot answer ------------------------------------------------------------------


def test_missing_store_shows_how_to_index(tmp_path, monkeypatch):
    home = tmp_path / "nowhere"
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    at = start()
    assert "no clipsearch store" in texts(at.info)
    assert f"clipsearch --home {home} index" in texts(at.code)
    assert not home.exists(), "looking must not create a store"
    assert not at.text_input


def test_store_with_nothing_indexed_shows_how_to_index(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"nope")
    ok(run_cli("--home", home, "index", tmp_path / "junk", "--model", MODEL))
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    at = start()
    assert "No images have been indexed" in texts(at.info)
    assert {m.label: m.value for m in at.sidebar.metric}["Failed files"] == "1"


def test_unloadable_model_is_a_readable_error(own_store):
    _photos, home = own_store
    con = sqlite3.connect(home / "catalog.db")
    with con:
        con.execute(
            "UPDATE store_meta SET value = ? WHERE key = 'model'",
            (json.dumps({"model_id": "random:no-such-arch", "spec": "random:no-such-arch", "dim": 64}),),
        )
    con.close()
    at = start()
    assert "Cannot load the search engine" in texts(at.error)
    assert "unknown architecture 'no-such-arch'" in texts(at.error)


def test_image_gone_from_disk(own_store):
    photos, home = own_store
    at = exif_results(photos)
    assert len(grid(at)) == 2
    (photos / "exif" / "upright.jpg").unlink()  # its thumbnail is kept
    rotated = photos / "exif" / "rotated.jpg"
    Thumbnails.for_settings(Settings.from_env(home)).path_for(content_hash(rotated.read_bytes())).unlink()
    rotated.unlink()  # nothing left to show
    at.text_input(key="q").input("another photo").run()
    assert not at.exception
    assert sorted(names(at)) == ["rotated.jpg", "upright.jpg"]
    assert len(grid(at)) == 1, "a kept thumbnail outlives its original"
    assert "rotated.jpg is no longer on disk" in texts(at.warning)
    key = [b for b in at.button if b.label == "Open"][names(at).index("upright.jpg")].key
    at.button(key=key).click().run()
    assert not at.exception
    assert "upright.jpg is no longer on disk; run `clipsearch index`" in texts(at.error)


# -- thumbnails -----------------------------------------------------------------------------------


def test_index_writes_a_thumbnail_per_decoded_image(store):
    _photos, home = store
    thumbs = sorted((home / "thumbs").rglob("*.jpg"))
    assert len(thumbs) == N_IMAGES
    for path in thumbs:
        assert path.parent.name == path.stem[:2]
        with Image.open(path) as img:
            assert img.format == "JPEG" and max(img.size) <= Settings.thumbnail_size


def test_next_index_run_restores_missing_thumbnails_without_re_embedding(tmp_path):
    photos, home = build_store(tmp_path)
    shutil.rmtree(home / "thumbs")
    summary = index_json(photos, env={"CLIPSEARCH_HOME": str(home)})
    # Counts as a plain re-run would (the broken file is unchanged too): only thumbnails are made.
    assert (summary["unchanged"], summary["embedded"], summary["new"], summary["updated"]) == (N_IMAGES + 1, 0, 0, 0)
    assert len(list((home / "thumbs").rglob("*.jpg"))) == N_IMAGES
    again = index_json(photos, env={"CLIPSEARCH_HOME": str(home)})
    assert (again["unchanged"], again["embedded"]) == (N_IMAGES + 1, 0)


def test_unchanged_re_index_trusts_its_thumbnail_marks_until_one_is_removed(tmp_path, monkeypatch):
    photos, home = build_store(tmp_path)
    listings = []
    real_existing = Thumbnails.existing
    monkeypatch.setattr(Thumbnails, "existing", lambda self: listings.append(1) or real_existing(self))
    env = {"CLIPSEARCH_HOME": str(home)}
    assert index_json(photos, env=env)["unchanged"] == N_IMAGES + 1
    assert listings == [], "a completed run's marks should spare the next one listing the cache"

    removed = next((home / "thumbs").rglob("*.jpg"))
    removed.unlink()
    assert index_json(photos, env=env)["embedded"] == 0
    assert listings == [1] and removed.is_file(), "a removed thumbnail must be noticed and made again"
    assert index_json(photos / "exif", env=env)["unchanged"] == 2
    assert listings == [1, 1], "a folder never marked on its own is checked"


def test_missing_thumbnail_is_made_on_demand(tmp_path):
    original = save_image(pattern_image(7, size=(900, 600)), tmp_path / "big.jpg")
    data = original.read_bytes()
    assert content_hash(data) == indexer_content_hash(data)
    thumbs = Thumbnails(tmp_path / "thumbs", side=320, max_megapixels=100)
    digest = content_hash(data)
    assert not thumbs.has(digest)
    made = thumbs.get(digest, original)
    assert thumbs.has(digest)
    with Image.open(thumbs.path_for(digest)) as img:
        assert img.size == (320, 213)
    original.unlink()
    assert thumbs.get(digest, original) == made, "a kept thumbnail outlives its original"
    with pytest.raises(StoreError, match="no longer on disk"):
        thumbs.get("00" * 16, original)
    with pytest.raises(StoreError, match="not a content hash"):
        thumbs.path_for("../../etc/passwd")


# -- the command ------------------------------------------------------------------------------------


def test_ui_command_starts_streamlit_bound_to_localhost(tmp_path, monkeypatch):
    started = {}

    class FakeServer:
        def __init__(self, command, env):
            started.update(command=command, env=env)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(ui_cmd.subprocess, "Popen", FakeServer)
    result = ok(run_cli("--home", tmp_path / "h", "ui", "--port", "8765"))
    assert "http://127.0.0.1:8765" in result.stdout
    command = started["command"]
    assert command[1:4] == ["-m", "streamlit", "run"] and Path(command[4]).resolve() == Path(APP).resolve()
    flags = dict(zip(command[5::2], command[6::2], strict=False))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8765"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert started["env"]["CLIPSEARCH_HOME"] == str((tmp_path / "h").resolve())
