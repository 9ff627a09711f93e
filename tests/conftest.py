"""Shared fixtures: an isolated store per test, generated photo folders, and the real CLI.

Every test gets its own CLIPSEARCH_HOME under tmp_path and runs fully offline
(HF_HUB_OFFLINE=1): no test ever downloads weights. The model is `random:cs-tiny`
(a 32 px random ViT shipped in clipsearch/models/configs), fast enough for a CPU.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

# Set before anything imports huggingface_hub / open_clip.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# One OpenMP thread for torch and FAISS (before either is imported). On 2-core machines
# shared with other jobs, spinning OpenMP workers made FAISS k-means ~30x and the suite
# ~3x slower; the tiny test models gain nothing from a second thread. Override by setting it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import sqlalchemy
from PIL import Image
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.synthetic.corpus import make_item

MODEL = "random:cs-tiny"

EXIF_ORIENTATION = 0x0112
EXIF_MAKE = 0x010F
EXIF_MODEL = 0x0110
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003

_CLEARED_ENV = (
    "DATABASE_URL",
    "CLIPSEARCH_FLAT_MAX",
    "CLIPSEARCH_MAX_MEGAPIXELS",
    "CLIPSEARCH_MODEL_CACHE",
    "CLIPSEARCH_RUNTIME",
)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the session: a model's ONNX export (keyed by its weights) is made once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch, model_cache) -> Path:
    """Offline, and a fresh store home for every test; returns the home folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLIPSEARCH_MODEL_CACHE", str(model_cache))
    return home


@pytest.fixture
def home(env) -> Path:
    return env


# -- images ---------------------------------------------------------------------------------


def pattern_image(seed: int, size: tuple[int, int] = (64, 48), grid: tuple[int, int] = (4, 3)) -> Image.Image:
    """A distinct, seeded picture: a coarse grid of random colours, upscaled without blur."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(grid[1], grid[0], 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize(size, Image.Resampling.NEAREST)


def variant_image(
    seed: int, variant: int, size: tuple[int, int] = (64, 48), grid: tuple[int, int] = (4, 3)
) -> Image.Image:
    """A close relative of pattern_image(seed): each cell's colour nudged by a little seeded noise.

    Variants of one seed are each other's nearest neighbours (a cluster), far from other seeds.
    """
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(grid[1], grid[0], 3), dtype=np.uint8).astype(np.int16)
    jitter = np.random.default_rng(10_000 + 97 * seed + variant).integers(-20, 21, size=cells.shape)
    cells = np.clip(cells + jitter, 0, 255).astype(np.uint8)
    return Image.fromarray(cells, "RGB").resize(size, Image.Resampling.NEAREST)


def make_exif(
    orientation: int | None = None,
    taken: str | None = None,
    make: str | None = None,
    model: str | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    if make is not None:
        exif[EXIF_MAKE] = make
    if model is not None:
        exif[EXIF_MODEL] = model
    if taken is not None:
        exif.get_ifd(EXIF_IFD)[EXIF_DATETIME_ORIGINAL] = taken
    return exif


def save_image(img: Image.Image, path: Path, exif: Image.Exif | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if path.suffix.lower() in (".jpg", ".jpeg"):
        kwargs["quality"] = 95
    if exif is not None:
        kwargs["exif"] = exif
    img.save(path, **kwargs)
    return path


def make_photos(folder: Path, n: int, seed: int = 0, prefix: str = "img") -> list[Path]:
    """n distinct seeded 64x48 photos (JPEG and PNG alternating), named in a stable order."""
    paths = []
    for i in range(n):
        ext = ".png" if i % 3 == 2 else ".jpg"
        paths.append(save_image(pattern_image(seed * 1000 + i), folder / f"{prefix}{i:03d}{ext}"))
    return paths


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of 12 plain photos plus 2 with EXIF (one rotated, both with time and camera)."""
    folder = tmp_path / "photos"
    make_photos(folder, 12)
    save_image(
        pattern_image(501, size=(64, 48)),
        folder / "exif" / "rotated.jpg",
        make_exif(orientation=6, taken="2021:06:15 10:30:00", make="Canon", model="Canon EOS 5D"),
    )
    save_image(
        pattern_image(502, size=(64, 48)),
        folder / "exif" / "upright.jpg",
        make_exif(orientation=1, taken="2019:12:31 23:59:58", make="FUJIFILM", model="X-T3"),
    )
    return folder


PHOTOS_COUNT = 14


# -- the CLI --------------------------------------------------------------------------------


def index_argv(folder, *extra: str) -> list[str]:
    """The real `clipsearch index FOLDER` command line (test model), for tests that run it as a process."""
    return [sys.executable, "-m", "clipsearch", "index", str(folder), "--model", MODEL, *extra]


def run_cli(*args, env: dict | None = None):
    """Invoke the real `clipsearch` app in-process; unexpected exceptions are re-raised."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def index_json(*args, env: dict | None = None) -> dict:
    """`clipsearch index ARGS --json` (model defaults to random:cs-tiny); returns the summary."""
    if "--model" not in args and "-m" not in args:
        args = (*args, "--model", MODEL)
    result = ok(run_cli("index", *args, "--json", env=env))
    return json.loads(result.stdout)


def query_json(*args, env: dict | None = None) -> list[dict]:
    """The results of `clipsearch query ARGS --json` (its "terms" and "notes" left out)."""
    result = ok(run_cli("query", *args, "--json", env=env))
    return json.loads(result.stdout)["results"]


def status_json(env: dict | None = None) -> dict:
    return json.loads(ok(run_cli("status", "--json", env=env)).stdout)


# -- reading the catalog back ---------------------------------------------------------------


def catalog_url(home: Path) -> str:
    """The catalog the CLI is using in this test: DATABASE_URL (PostgreSQL runs) or SQLite in home."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'catalog.db'}"


def _select(home: Path, sql: str) -> list[dict]:
    # Plain SQL through a bare engine, not through clipsearch's catalog code.
    url = catalog_url(home)
    if url.startswith("sqlite:///") and not Path(url.split("///", 1)[1]).exists():
        return []  # no catalog was ever created (connecting would create an empty one)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as con:
            return [dict(r._mapping) for r in con.execute(sqlalchemy.text(sql))]
    finally:
        engine.dispose()


def catalog_rows(home: Path) -> dict[str, dict]:
    """Every row of the images table, keyed by path."""
    rows = _select(home, "SELECT * FROM images ORDER BY id")
    return {r["path"]: {k: _plain(v) for k, v in r.items()} for r in rows}


def _plain(value):
    """Column values as SQLite returns them, whichever database the rows came from."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, datetime):
        return str(value)
    return value


def tombstone_ids(home: Path) -> list[int]:
    return [r["image_id"] for r in _select(home, "SELECT image_id FROM tombstones ORDER BY seq")]


# -- catalog backends -----------------------------------------------------------------------

PG_URL = os.environ.get("CLIPSEARCH_TEST_DATABASE_URL")


def reset_postgres(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as con:
            con.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
            con.execute(sqlalchemy.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, env, monkeypatch) -> str:
    """Runs a test on SQLite and, when CLIPSEARCH_TEST_DATABASE_URL is set (CI), on PostgreSQL.

    Returns the catalog URL; for PostgreSQL it is also exported as DATABASE_URL.
    """
    if request.param == "sqlite":
        return f"sqlite:///{env / 'catalog.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL runs need CLIPSEARCH_TEST_DATABASE_URL (set by .ci/run via .ci/postgres.sh)")
    reset_postgres(PG_URL)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    return PG_URL


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def distinct_scenes(n: int) -> list:
    """Single objects in the centre on a plain background, each a different colour+shape: pictures the
    bundled model tells apart (same colour+shape pictures are near-duplicates to it, and so they are)."""
    scenes, keys = [], set()
    for i in range(20_000):
        scene = make_item(91, "heldout", i)[0]
        key = (scene.colour, scene.shape)
        if scene.count == 1 and scene.position == "centre" and scene.texture == "plain" and key not in keys:
            scenes.append(scene)
            keys.add(key)
            if len(scenes) == n:
                return scenes
    raise AssertionError("not enough distinct scenes")


def default_sigint() -> None:
    """preexec_fn for a CLI that a test interrupts: a runner started in the background (nohup, `&` in a
    script) passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
