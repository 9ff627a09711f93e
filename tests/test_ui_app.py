"""The web page's logic through Streamlit's AppTest, against real indexed stores.

One store is indexed per module (random:cs-tiny) and shared by the read-only tests; tests
that change files on disk index their own. The page reads CLIPSEARCH_HOME like `clipsearch ui`.
Searches are started from URL query parameters where possible: that is how a shared link,
a bookmark or the browser's Back arrive. Clicks inside the detail dialog (a fragment) need a
real browser: tests/test_ui_browser.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from conftest import (
    MODEL,
    catalog_rows,
    index_json,
    make_exif,
    make_photos,
    ok,
    pattern_image,
    query_json,
    run_cli,
    save_image,
)
from PIL import Image
from streamlit.testing.v1 import AppTest

from clipsearch.catalog.engine import make_engine
from clipsearch.errors import StoreError
from clipsearch.imaging import content_hash
from clipsearch.lock import index_lock
from clipsearch.search import SearchService
from clipsearch.settings import Settings
from clipsearch.thumbnails import Thumbnails
from clipsearch.ui import inputs
from clipsearch.ui.inputs import PageInput, from_params, to_params
from clipsearch.ui.text import score_label

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
N_PLAIN = 22
N_IMAGES = N_PLAIN + 2  # one page of 24, two of 12: the exact page boundaries
CARD = re.compile(r"^(<0|\d\.\d{3}) · (.+)$")


def build_store(root: Path) -> tuple[Path, Path]:
    """A photo folder (22 plain + 2 with EXIF + 1 broken file) indexed into root/home."""
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


def start(**params: str) -> AppTest:
    """The page as opened from a URL with these query parameters."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="q").input(text).run()
    assert not at.exception, at.exception
    return at


def cards(at: AppTest) -> list[tuple[str, str]]:
    """(score label, file name) of every result card, in page order."""
    return [m.groups() for m in (CARD.match(t.value) for t in at.text) if m]


def names(at: AppTest) -> list[str]:
    return [name for _score, name in cards(at)]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def url(at: AppTest) -> dict[str, str]:
    return {
        key: at.query_params[key][-1] if isinstance(at.query_params[key], list) else at.query_params[key]
        for key in at.query_params
    }


def open_result(at: AppTest, name: str) -> AppTest:
    """Click a card (the dialog's content then shows in the element tree)."""
    keys = [b.key for b in at.button if b.key.startswith("cs-open-")]
    at.button(key=keys[names(at).index(name)]).click().run()
    assert not at.exception, at.exception
    return at


# -- searching ---------------------------------------------------------------------------------


def test_query_shows_scored_results_best_first_with_timing(store):
    at = search(start(), "a red square")
    shown = cards(at)
    assert len(shown) == N_IMAGES  # the default page (48) holds the whole store
    scores = [float(s) for s, _ in shown if s != "<0"]
    assert scores == sorted(scores, reverse=True)
    assert re.search(rf"{N_IMAGES} results · search took [\d,]+ ms", texts(at.caption))
    assert not [b for b in at.button if b.key == "cs-more"], "everything is shown: no 'load more'"
    # Same ranking as the CLI: one search service behind both.
    cli = [Path(hit["path"]).name for hit in query_json("a red square", "-k", N_IMAGES)]
    assert names(at) == cli
    assert url(at) == {"q": "a red square"}, "the search is in the URL"


def test_text_prompts_control_matches_the_cli_and_travels_in_the_url(store):
    at = search(start(), "a red square")
    assert "Words embedded with the prompts" not in texts(at.caption)  # random weights: off by default
    at.sidebar.selectbox(key="prompts").set_value("prompts").run()
    assert not at.exception, at.exception
    assert "Words embedded with the prompts a photo of {}." in texts(at.caption)
    cli = [Path(hit["path"]).name for hit in query_json("a red square", "-k", N_IMAGES, "--prompts")]
    assert names(at) == cli and cli != [Path(h["path"]).name for h in query_json("a red square", "-k", N_IMAGES)]
    assert url(at) == {"q": "a red square", "prompts": "prompts"}
    assert names(start(q="a red square", prompts="prompts")) == cli


def test_load_more_stops_at_exact_page_boundaries(store):
    at = start(q="a red square", n="12")
    assert len(cards(at)) == 12 and "12 results so far" in texts(at.caption)
    at.button(key="cs-more").click().run()
    assert not at.exception
    assert len(cards(at)) == N_IMAGES == 24 and len(set(names(at))) == N_IMAGES
    assert not [b for b in at.button if b.key == "cs-more"], "24 of 24 shown: no 'load more' that adds nothing"
    assert url(at)["page"] == "2"
    cli = [Path(hit["path"]).name for hit in query_json("a red square", "-k", N_IMAGES)]
    assert names(at) == cli
    exact = start(q="a red square", n="24")
    assert len(cards(exact)) == 24 and not [b for b in exact.button if b.key == "cs-more"]


def test_a_shared_url_gives_the_same_results(store):
    photos, _home = store
    at = start()
    at.sidebar.selectbox(key="folder").set_value(str(photos))
    at.sidebar.date_input(key="before").set_value(date(2030, 1, 1)).run()
    search(at, "a photo")
    link = url(at)
    assert link == {"q": "a photo", "folder": str(photos), "before": "2030-01-01"}
    again = start(**link)
    assert cards(again) == cards(at) and cards(at)
    assert again.text_input(key="q").value == "a photo"
    assert again.sidebar.selectbox(key="folder").value == str(photos)


def test_bad_url_values_are_ignored_with_a_note(store):
    at = start(q="a photo", after="yesterday", n="7", page="2")
    assert "Ignored in the link (not valid): n=7, after=yesterday" in texts(at.text)
    assert len(cards(at)) == N_IMAGES


def test_url_round_trip_of_every_field():
    full = PageInput(
        text="a dog",
        like_id=7,
        folder="/p/[x](y)",
        after=date(2020, 1, 2),
        before=date(2021, 3, 4),
        min_score=0.25,
        page_size=96,
        pages=3,
        plus=("snow", "2:[x](y)"),
        minus=("people",),
        prompts="prompts",
    )
    assert from_params(to_params(full)) == (full, [])
    assert to_params(PageInput()) == {}


def test_added_and_excluded_terms_combine_and_travel_in_the_url(store):
    plain = start(q="a photo")
    at = start(q="a photo", plus="2:red", minus="blue")
    assert "Query: a photo + 2:red − blue" in texts(at.text)
    assert [at.text_input(key=k).value for k in ("cs-term-1", "cs-term-2")] == ["2:red", "blue"]
    assert names(at) != names(plain), "the extra terms change the ranking"
    cli = query_json("a photo", "--plus", "2:red", "--minus", "blue", "-k", N_IMAGES)
    assert names(at) == [Path(hit["path"]).name for hit in cli], "the same combined query as the CLI"
    at.button(key="cs-add-minus").click().run()
    at.text_input(key="cs-term-3").input("green").run()
    assert at.query_params["minus"] == ["blue", "green"]
    assert "Query: a photo + 2:red − blue − green" in texts(at.text)
    at.button(key="cs-term-x-1").click().run()
    assert "Query: a photo − blue − green" in texts(at.text)
    assert "plus" not in url(at)


def test_folder_filter_suggests_indexed_folders(store):
    photos, _home = store
    at = start()
    folder = at.sidebar.selectbox(key="folder")
    assert str(photos) in folder.options[0] and any(str(photos / "exif") in o for o in folder.options)
    assert f"{photos / 'exif'}  (2)" in folder.options, "each suggestion says how many images it holds"
    folder.set_value(str(photos / "exif")).run()
    search(at, "a photo")
    assert sorted(names(at)) == ["rotated.jpg", "upright.jpg"]
    typed = start(q="a photo", folder=str(photos / "ex"))  # typed, not picked: any folder is accepted
    assert not cards(typed), "a folder is not a name prefix: photos/ex must not match photos/exif"
    assert f"No indexed image is under the folder {photos / 'ex'}." in texts(typed.text)
    assert f"Indexed folders with a similar name: {photos / 'exif'}" in texts(typed.text)


def test_empty_results_name_the_filter(store):
    photos, _home = store
    dated = start(q="a photo", folder=str(photos / "exif"), after="2022-01-01")
    assert f"No image under {photos / 'exif'} was taken on or after 2022-01-01." in texts(dated.text)
    scored = start(q="a photo", min="0.99")
    assert re.search(r"The best match scores [\d.]+, under the minimum score 0\.99", texts(scored.text))


def test_date_filters(store):
    at = start()
    at.sidebar.date_input(key="after").set_value(date(2021, 1, 1)).run()
    search(at, "a photo")
    assert names(at) == ["rotated.jpg"]
    at.sidebar.date_input(key="after").set_value(None)
    at.sidebar.date_input(key="before").set_value(date(2020, 1, 1)).run()
    assert names(at) == ["upright.jpg"]


def test_reversed_date_range_is_a_readable_error(store):
    at = start(q="a photo", after="2022-01-01", before="2020-01-01")
    assert "date range is reversed" in texts(at.text)
    assert not cards(at)


def test_more_like_this_keeps_the_text_and_clear_goes_back(store):
    photos, _home = store
    at = search(start(), "a red square")
    third = names(at)[2]
    third_id = [b.key for b in at.button if b.key.startswith("cs-open-")][2].split("-")[-1]
    like = start(q="a red square", like=third_id)
    assert f"Images like {photos / third}, combined with the text “a red square”" in texts(like.text)
    assert names(like)[0] == third
    image_only = start(like=third_id)
    assert names(image_only)[0] == third and float(cards(image_only)[0][0]) == pytest.approx(1.0, abs=1e-3)
    image_only.sidebar.slider(key="min_score").set_value(0.999).run()
    assert names(image_only) == [third]
    like.button(key="cs-clear-example").click().run()
    assert url(like) == {"q": "a red square"} and names(like) == names(at)


def test_upload_an_example(store):
    photos, _home = store
    at = start()
    at.file_uploader[0].set_value(("query.jpg", (photos / "img004.jpg").read_bytes(), "image/jpeg")).run()
    assert not at.exception
    assert names(at)[0] == "img004.jpg"
    assert float(cards(at)[0][0]) > 0.99
    assert "Example image: query.jpg" in texts(at.text)
    at.file_uploader[0].set_value(("notes.png", b"plain text, not an image", "image/png")).run()
    assert "notes.png cannot be used as an example" in texts(at.text)


def test_heic_is_offered_only_when_readable(monkeypatch):
    real = inputs.importlib.util.find_spec
    monkeypatch.setattr(inputs.importlib.util, "find_spec", lambda name: None if name == "pillow_heif" else real(name))
    assert "heic" not in inputs.upload_types() and "jpg" in inputs.upload_types()
    monkeypatch.setattr(inputs.importlib.util, "find_spec", lambda name: object())
    assert {"heic", "heif"} <= set(inputs.upload_types())


def test_negative_scores_are_not_shown_as_numbers():
    assert score_label(0.4123) == "0.412" and score_label(-0.02) == "<0"


def test_open_a_result_shows_image_and_facts(store):
    photos, _home = store
    at = open_result(start(q="a photo", folder=str(photos / "exif")), "rotated.jpg")
    facts = texts(at.text)
    assert "Camera: Canon EOS 5D" in facts and "Taken: 2021-06-15 10:30" in facts
    assert "Dimensions: 48 × 64 px" in facts, "EXIF orientation 6 turns the 64x48 picture upright"
    assert str(photos / "exif" / "rotated.jpg") in texts(at.code)
    assert [b.label for b in at.get("download_button")] == ["Download original"]
    assert {"cs-prev", "cs-next", "cs-like-open"} <= {b.key for b in at.button}


def test_sidebar_shows_store_status(store):
    at = start()
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert metrics == {"Images indexed": str(N_IMAGES), "Failed files": "1"}
    assert MODEL in texts(at.sidebar.code) and f"Index: flat, {N_IMAGES} vectors" in texts(at.sidebar.caption)
    assert "broken.jpg: not a recognised image format" in texts(at.sidebar.text)
    assert "An index run is in progress" not in texts(at.sidebar.info)


def test_sidebar_shows_a_running_index(store):
    photos, home = store
    settings = Settings.from_env(home)
    engine = make_engine(settings.catalog_url)
    with index_lock(engine, settings.lock_path, [str(photos)]):  # what `clipsearch index` holds while it runs
        at = start()
    engine.dispose()
    assert "An index run is in progress" in texts(at.sidebar.info)


def test_engine_loads_once_and_new_commits_appear(own_store, monkeypatch):
    photos, home = own_store
    opened = []
    real_open = SearchService.open.__func__
    monkeypatch.setattr(
        SearchService, "open", classmethod(lambda cls, *a, **kw: opened.append(1) or real_open(cls, *a, **kw))
    )
    first = start(q="a red square")
    assert len(cards(first)) == N_IMAGES
    make_photos(photos / "later", 3, seed=9, prefix="later")
    ok(run_cli("--home", home, "index", photos / "later"))
    second = start(q="a blue circle")  # another session, after an index run committed
    assert len(cards(second)) == N_IMAGES + 3
    assert {"later000.jpg", "later001.jpg", "later002.png"} <= set(names(second))
    metrics = {m.label: m.value for m in second.sidebar.metric}
    assert metrics["Images indexed"] == str(N_IMAGES + 3)
    assert f"Index: flat, {N_IMAGES + 3} vectors" in texts(second.sidebar.caption), "the counts agree"
    assert len(opened) == 1, "model, catalog and index load once per server process"


def test_search_on_each_catalog_backend(backend, tmp_path, monkeypatch):
    _photos, home = build_store(tmp_path / "b")  # into DATABASE_URL when the backend is PostgreSQL
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    at = start(q="a red square")
    assert len(cards(at)) == N_IMAGES
    assert {m.label: m.value for m in at.sidebar.metric}["Images indexed"] == str(N_IMAGES)
    if backend.startswith("postgresql"):
        assert "postgresql" in texts(at.sidebar.code)
        assert "An index run is in progress" not in texts(at.sidebar.info)


# -- stores that cannot answer ------------------------------------------------------------------


def test_missing_store_shows_how_to_index(tmp_path, monkeypatch):
    home = tmp_path / "nowhere"
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    at = start()
    assert "no clipsearch store" in texts(at.text)
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
    assert "No images have been indexed" in texts(at.text)
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
    assert "Cannot load the search engine" in texts(at.text)
    assert "unknown architecture 'no-such-arch'" in texts(at.text)


def test_image_gone_from_disk(own_store):
    photos, home = own_store
    at = start(q="a photo", folder=str(photos / "exif"))
    assert len(cards(at)) == 2
    (photos / "exif" / "upright.jpg").unlink()  # its thumbnail is kept
    rotated = photos / "exif" / "rotated.jpg"
    Thumbnails.for_settings(Settings.from_env(home)).path_for(content_hash(rotated.read_bytes())).unlink()
    rotated.unlink()  # nothing left to show
    search(at, "another photo")
    assert sorted(names(at)) == ["rotated.jpg", "upright.jpg"]
    assert len(at.image) == 1 and "no preview" in texts(at.text), "a kept thumbnail outlives its original"
    open_result(at, "upright.jpg")
    assert "upright.jpg is no longer on disk; run `clipsearch index`" in texts(at.text)
    assert not at.get("download_button"), "nothing to download"
    assert len(at.image) == 2, "the preview made at index time stands in"


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


def test_missing_thumbnail_is_made_on_demand(tmp_path, home):
    original = save_image(pattern_image(7, size=(900, 600)), tmp_path / "photos" / "big.jpg")
    data = original.read_bytes()
    index_json(tmp_path / "photos")
    digest = catalog_rows(home)[str(original.resolve())]["content_hash"]
    # The indexer's key for a file is the thumbnail cache's key: blake2b-128 of its bytes.
    assert digest == hashlib.blake2b(data, digest_size=16).hexdigest()
    thumbs = Thumbnails.for_settings(Settings.from_env(home))
    assert thumbs.has(digest), "the indexer made it under the catalog's key"
    thumbs.path_for(digest).unlink()
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
    from clipsearch.cli import ui_cmd

    started = {}

    class FakeServer:
        def __init__(self, command, env):
            started.update(command=command, env=env)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(ui_cmd.subprocess, "Popen", FakeServer)
    monkeypatch.setenv("CLIPSEARCH_UI_PASSWORD", "")
    result = ok(run_cli("--home", tmp_path / "h", "ui", "--port", "8765"))
    assert "http://127.0.0.1:8765" in result.stdout and "warning" not in result.stderr
    command = started["command"]
    assert command[1:4] == ["-m", "streamlit", "run"] and Path(command[4]).name == "server.py"
    flags = list(zip(command[5::2], command[6::2], strict=True))
    single = dict(flags)
    assert single["--server.address"] == "127.0.0.1" and single["--server.port"] == "8765"
    assert single["--server.headless"] == "true" and single["--browser.gatherUsageStats"] == "false"
    assert single["--server.enableXsrfProtection"] == "true" and single["--server.enableCORS"] == "true"
    assert [v for k, v in flags if k == "--server.allowedHosts"] == ["localhost", "127.0.0.1", "::1"]
    assert started["env"]["CLIPSEARCH_HOME"] == str((tmp_path / "h").resolve())
    assert "CLIPSEARCH_UI_PASSWORD" not in started["env"]


def test_sign_in_returns_only_to_pages_of_this_server():
    from clipsearch.ui.gate import safe_next

    assert safe_next("/?q=a+dog&page=2") == "/?q=a+dog&page=2"
    for outside in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "evil"):
        assert safe_next(outside) == "/", outside


def test_ui_command_refuses_the_network_without_a_password(tmp_path, monkeypatch):
    from clipsearch.cli import ui_cmd

    monkeypatch.setattr(ui_cmd.subprocess, "Popen", lambda *a, **k: pytest.fail("must not start a server"))
    monkeypatch.delenv("CLIPSEARCH_UI_PASSWORD", raising=False)
    result = run_cli("--home", tmp_path / "h", "ui", "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert "reachable from other machines" in result.stderr and "--insecure-no-auth" in result.stderr
    short = tmp_path / "pw"
    short.write_text("abc\n")
    result = run_cli("--home", tmp_path / "h", "ui", "--host", "0.0.0.0", "--password-file", short)
    assert result.exit_code == 1 and "at least 8 characters" in result.stderr
