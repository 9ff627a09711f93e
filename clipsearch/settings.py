"""Where state lives and the tunables of the store, read from the environment in one place."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from clipsearch.errors import ConfigError

DEFAULT_MODEL = "ViT-B-32:laion2b_s34b_b79k"
DEVICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
_N = TypeVar("_N", int, float)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to one, like {default}, or unset it") from exc
    return _not_negative(name, raw, value, default)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to one, like {default:g}, or unset it") from exc
    return _not_negative(name, raw, value, default)


def _not_negative(name: str, raw: str, value: _N, default: _N) -> _N:
    if not value >= 0:  # also refuses nan
        raise ConfigError(f"{name}={raw!r} must be 0 or more; set it to a number like {default:g}, or unset it")
    return value


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# The environment variable behind each setting read from it (README, "Configuration").
ENVIRONMENT = {
    "home": "CLIPSEARCH_HOME",
    "database_url": "DATABASE_URL",
    "flat_max": "CLIPSEARCH_FLAT_MAX",
    "max_megapixels": "CLIPSEARCH_MAX_MEGAPIXELS",
    "disk_reserve_mb": "CLIPSEARCH_DISK_RESERVE_MB",
    "text_int8": "CLIPSEARCH_TEXT_INT8",
    "runtime": "CLIPSEARCH_RUNTIME",
}
MODEL_CACHE_ENV = "CLIPSEARCH_MODEL_CACHE"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None = None
    # Exact search stays fast and exact up to here; past it the index switches to IVF-PQ.
    flat_max: int = 50_000
    max_megapixels: float = 100.0
    thumbnail_size: int = 320
    # Thumbnails stop being written while less than this is free where the home is: the catalog
    # (the work that cannot be redone cheaply) keeps the last of the disk.
    disk_reserve_mb: int = 1024
    # Queries encode text with an int8 text tower (CPU only; see docs/benchmarks.md, section 4).
    text_int8: bool = False
    # Model runtime: onnx | torch | auto (torch to index on a CUDA GPU, ONNX Runtime for the rest).
    runtime: str = "auto"

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> Settings:
        env = ENVIRONMENT
        home_value = home or os.environ.get(env["home"]) or platformdirs.user_data_dir("clipsearch")
        return cls(
            home=Path(home_value).expanduser().resolve(),
            database_url=os.environ.get(env["database_url"]) or None,
            flat_max=_env_int(env["flat_max"], cls.flat_max),
            max_megapixels=_env_float(env["max_megapixels"], cls.max_megapixels),
            disk_reserve_mb=_env_int(env["disk_reserve_mb"], cls.disk_reserve_mb),
            text_int8=_env_flag(env["text_int8"]),
            runtime=os.environ.get(env["runtime"], "").strip().lower() or cls.runtime,
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def index_path(self) -> Path:
        return self.home / "vectors.faiss"

    @property
    def model_cache(self) -> Path:
        return Path(os.environ.get(MODEL_CACHE_ENV) or self.home / "models")

    @property
    def lock_path(self) -> Path:
        return self.home / "index.lock"


def check_device(device: str) -> str:
    """A --device value, checked by its spelling alone (the query path never imports torch)."""
    value = device.strip().lower()
    if not _DEVICE.fullmatch(value):
        raise ConfigError(f"--device {device!r} is not a device; use {DEVICES}")
    return value
