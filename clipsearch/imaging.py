"""Reading image files into model-ready pixels, plus the metadata the catalog keeps.

The fast path decodes JPEGs at reduced size (Pillow's ``draft``) before the exact
resize, which keeps results faithful to open_clip's reference preprocessing while
avoiding most of the decode cost of multi-megapixel photos.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clipsearch.errors import ImageDecodeError
from clipsearch.image_types import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS  # re-exported: it lives apart for the scan

_EXIF_ORIENTATION = 0x0112
_EXIF_MODEL = 0x0110
_EXIF_MAKE = 0x010F
_EXIF_IFD = 0x8769
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132

_HEIF_REGISTERED = False


def content_hash(data: bytes) -> str:
    """The catalog's content hash of a file's bytes (moves, thumbnails and dedup all key on it)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def register_optional_formats() -> None:
    """Enable HEIC/HEIF when the optional pillow-heif package is installed."""
    global _HEIF_REGISTERED
    if _HEIF_REGISTERED:
        return
    _HEIF_REGISTERED = True
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


@dataclass(frozen=True)
class PreprocessConfig:
    """How a model expects its input: square side, normalisation, resize policy."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "shortest"  # shortest (resize + centre crop) | squash | longest (pad)
    interpolation: str = "bicubic"

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_mode": self.resize_mode,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        size = data["size"]
        if isinstance(size, (list, tuple)):
            size = int(size[0])
        return cls(
            size=int(size),
            mean=_rgb_triple(data["mean"]),
            std=_rgb_triple(data["std"]),
            resize_mode=data.get("resize_mode", "shortest"),
            interpolation=data.get("interpolation", "bicubic"),
        )


def _rgb_triple(values: list[float]) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in values)
    return r, g, b


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    taken_at: datetime | None
    camera: str | None
    orientation: int | None


_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def _parse_exif_time(value: object) -> datetime | None:
    if not value:
        return None
    text = value.decode(errors="ignore") if isinstance(value, bytes) else str(value)
    text = text.strip().strip("\x00")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return datetime.strptime(text[:19], fmt)
        except ValueError:
            continue
    return None


def _read_exif(img: Image.Image) -> tuple[int | None, datetime | None, str | None]:
    try:
        exif = img.getexif()
    except Exception:  # a corrupt EXIF block must not cost us the picture
        return None, None, None
    orientation = exif.get(_EXIF_ORIENTATION)
    try:
        orientation = int(orientation) if orientation is not None else None
    except (TypeError, ValueError):
        orientation = None
    taken = None
    try:
        taken = _parse_exif_time(exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL))
    except Exception:
        taken = None
    taken = taken or _parse_exif_time(exif.get(_EXIF_DATETIME))
    make = str(exif.get(_EXIF_MAKE) or "").strip().strip("\x00")
    model = str(exif.get(_EXIF_MODEL) or "").strip().strip("\x00")
    if make and model.lower().startswith(make.lower()):
        make = ""
    camera = " ".join(part for part in (make, model) if part) or None
    return orientation, taken, camera


def open_image(data: bytes, max_megapixels: float) -> tuple[Image.Image, ImageInfo]:
    """Open an image from its bytes, check its size, and read its metadata (pixels not yet decoded)."""
    register_optional_formats()
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        # Pillow's own decompression-bomb guard stays as the process has it (it warns past
        # Image.MAX_IMAGE_PIXELS, refuses past twice that): library code changes neither the
        # limit nor the warning filters, which are process-wide and not thread-safe.
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not a recognised image format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_over_pillow_limit(max_megapixels)) from exc
    except Exception as exc:
        raise ImageDecodeError(f"cannot read image header: {exc}") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"invalid dimensions {width}x{height}")
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise ImageDecodeError(
            f"too large: {width}x{height} is {megapixels:.1f} megapixels, over the "
            f"{max_megapixels:g} MP limit; raise CLIPSEARCH_MAX_MEGAPIXELS to index it"
        )
    orientation, taken, camera = _read_exif(img)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return img, ImageInfo(width=width, height=height, taken_at=taken, camera=camera, orientation=orientation)


def _over_pillow_limit(max_megapixels: float) -> str:
    pillow_mp = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    if pillow_mp >= max_megapixels:
        return f"too large: over the {max_megapixels:g} MP limit; raise CLIPSEARCH_MAX_MEGAPIXELS to index it"
    # The caller allows more than this process lets Pillow decode (see Image.MAX_IMAGE_PIXELS).
    return f"too large: over {pillow_mp:g} megapixels, Pillow's decompression-bomb limit in this program"


def _decode_rgb(img: Image.Image, min_side: int | None) -> Image.Image:
    """Decode pixels (optionally at reduced JPEG scale), apply EXIF orientation, convert to RGB."""
    try:
        if min_side and img.format == "JPEG":
            # draft() keeps both sides >= the request, so the short side stays >= min_side.
            img.draft("RGB", (min_side, min_side))
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img) or img
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit greyscale: scale to 8 bits instead of clipping everything to white.
            arr = np.asarray(img, dtype=np.uint32)
            img = Image.fromarray((arr >> 8).astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8))
        return img.convert("RGB")
    except ImageDecodeError:
        raise
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode image data ({type(exc).__name__}: {exc})") from exc


def resize_for_model(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """Resize/crop an RGB image exactly as open_clip's transform does; returns HxWx3 uint8."""
    size = cfg.size
    resample = _RESAMPLE.get(cfg.interpolation, Image.Resampling.BICUBIC)
    width, height = img.size
    if cfg.resize_mode == "squash":
        out = img.resize((size, size), resample)
    elif cfg.resize_mode == "longest":
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = img.resize((new_w, new_h), resample)
        out = Image.new("RGB", (size, size), (0, 0, 0))
        out.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    else:
        # torchvision.transforms.Resize(size) semantics: short side -> size, long side truncated.
        if width <= height:
            new_w, new_h = size, int(size * height / width)
        else:
            new_w, new_h = int(size * width / height), size
        if (new_w, new_h) != (width, height):
            img = img.resize((new_w, new_h), resample)
        left = int(round((new_w - size) / 2.0))
        top = int(round((new_h - size) / 2.0))
        out = img.crop((left, top, left + size, top + size))
    return np.array(out, dtype=np.uint8)


def load_for_model(
    data: bytes, cfg: PreprocessConfig, max_megapixels: float, fast: bool = True
) -> tuple[np.ndarray, ImageInfo]:
    """Bytes -> (HxWx3 uint8 pixels at model size, metadata). Raises ImageDecodeError."""
    img, info = open_image(data, max_megapixels)
    rgb = _decode_rgb(img, min_side=model_decode_side(cfg) if fast else None)
    return resize_for_model(rgb, cfg), info


def model_decode_side(cfg: PreprocessConfig) -> int:
    """The one draft size the model's input is decoded at.

    Fixed per model, whatever else the decode serves (a thumbnail, a query): the vector of a
    file must depend on its bytes and the model only.
    """
    return 2 * cfg.size


def decode_for_model(
    data: bytes, cfg: PreprocessConfig, max_megapixels: float
) -> tuple[Image.Image, np.ndarray, ImageInfo]:
    """Bytes -> (the decoded RGB image, model pixels made from it, metadata), as load_for_model."""
    img, info = open_image(data, max_megapixels)
    rgb = _decode_rgb(img, min_side=model_decode_side(cfg))
    return rgb, resize_for_model(rgb, cfg), info


def load_rgb(data: bytes, max_megapixels: float, min_side: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """Bytes -> oriented RGB image (for queries by example and thumbnails)."""
    img, info = open_image(data, max_megapixels)
    return _decode_rgb(img, min_side), info
