"""Decoding images into model input: orientation, EXIF metadata, limits, the fast path, odd formats."""

from __future__ import annotations

import io
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import catalog_rows, index_json, make_exif, make_photos, pattern_image, run_cli, status_json
from PIL import Image, ImageDraw, ImageFilter, features

from clipsearch.errors import ImageDecodeError
from clipsearch.imaging import PreprocessConfig, _decode_rgb, load_for_model, load_rgb, open_image, resize_for_model

CLIP_CFG = PreprocessConfig(224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        kw.setdefault("quality", 95)
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def quadrants(size=(64, 48)) -> np.ndarray:
    """An asymmetric picture: four solid quadrants, so every rotation and mirror looks different."""
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 2] = (220, 30, 30)
    arr[: h // 2, w // 2 :] = (30, 200, 40)
    arr[h // 2 :, : w // 2] = (30, 40, 210)
    arr[h // 2 :, w // 2 :] = (240, 240, 240)
    return arr


def photo_like(size=(2000, 1500), seed=0) -> Image.Image:
    """Smooth gradients with some soft shapes: compresses and downsamples like a photograph."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack(
        [
            128 + 90 * np.sin(x / 170.0) * np.cos(y / 230.0),
            120 + 80 * np.cos((x + y) / 260.0),
            110 + 70 * np.sin(y / 140.0 + 1.0),
        ],
        axis=-1,
    )
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(seed)
    for _ in range(25):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(40, 260)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img.filter(ImageFilter.GaussianBlur(4))


EXPECTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),  # rotate 90 degrees clockwise to display
    7: lambda a: np.rot90(a, k=2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),  # rotate 90 degrees counter-clockwise
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    arr = quadrants()
    data = encode(Image.fromarray(arr), exif=make_exif(orientation=orientation))
    img, info = open_image(data, max_megapixels=10)
    assert info.orientation == orientation
    swapped = orientation in (5, 6, 7, 8)
    assert (info.width, info.height) == ((48, 64) if swapped else (64, 48))

    rgb, info2 = load_rgb(data, max_megapixels=10)
    assert rgb.mode == "RGB" and rgb.size == (info.width, info.height)
    got = np.asarray(rgb, dtype=np.int16)
    want = EXPECTED[orientation](arr).astype(np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 4
    # ... and no other orientation would match: the check can tell them apart.
    for other, fn in EXPECTED.items():
        if other != orientation and fn(arr).shape == want.shape and not np.array_equal(fn(arr), want):
            assert np.abs(got - fn(arr).astype(np.int16)).mean() > 30

    # The model input is taken from the oriented pixels too.
    pixels, _ = load_for_model(data, PreprocessConfig(32, (0.5,) * 3, (0.5,) * 3), max_megapixels=10)
    oriented = resize_for_model(Image.fromarray(want.astype(np.uint8)), PreprocessConfig(32, (0.5,) * 3, (0.5,) * 3))
    assert np.abs(pixels.astype(np.int16) - oriented.astype(np.int16)).mean() < 6


def test_exif_capture_time_and_camera():
    img = pattern_image(1)
    _, info = open_image(
        encode(img, exif=make_exif(taken="2021:06:15 10:30:00", make="Canon", model="Canon EOS 5D")), 10
    )
    assert info.taken_at == datetime(2021, 6, 15, 10, 30, 0)
    assert info.camera == "Canon EOS 5D"
    _, info = open_image(encode(img, exif=make_exif(taken="2019:12:31 23:59:58", make="FUJIFILM", model="X-T3")), 10)
    assert (info.taken_at, info.camera) == (datetime(2019, 12, 31, 23, 59, 58), "FUJIFILM X-T3")

    # Falls back to the main IFD's DateTime when DateTimeOriginal is absent.
    exif = Image.Exif()
    exif[0x0132] = "2020:02:29 12:00:01"
    _, info = open_image(encode(img, exif=exif), 10)
    assert (info.taken_at, info.camera) == (datetime(2020, 2, 29, 12, 0, 1), None)

    # Garbage dates and no EXIF at all give None, not an error.
    _, info = open_image(encode(img, exif=make_exif(taken="not a date")), 10)
    assert info.taken_at is None
    _, info = open_image(encode(img, "PNG"), 10)
    assert (info.taken_at, info.camera, info.orientation) == (None, None, None)


def test_megapixel_limit_raises_an_actionable_error():
    data = encode(photo_like((2000, 1500)))
    with pytest.raises(ImageDecodeError) as info:
        open_image(data, max_megapixels=2)
    message = str(info.value)
    assert "2000x1500" in message and "3.0 megapixels" in message
    assert "2 MP" in message and "CLIPSEARCH_MAX_MEGAPIXELS" in message
    with pytest.raises(ImageDecodeError):
        load_for_model(data, CLIP_CFG, max_megapixels=2)
    assert open_image(data, max_megapixels=3.5)[1].width == 2000


def test_megapixel_limit_through_the_cli(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder, 3)
    Image.fromarray(quadrants((400, 300))).save(folder / "large.jpg", quality=90)
    summary = index_json(folder, env={"CLIPSEARCH_MAX_MEGAPIXELS": "0.1"})
    assert (summary["new"], summary["failed"]) == (3, 1)
    (failure,) = summary["failures"]
    assert failure["path"].endswith("large.jpg") and "CLIPSEARCH_MAX_MEGAPIXELS" in failure["reason"]
    row = catalog_rows(home)[failure["path"]]
    assert row["status"] == "failed" and "megapixels" in row["error"]
    assert status_json()["failed"] == 1


def test_corrupt_inputs_raise_image_decode_error():
    for data, fragment in ((b"", "0 bytes"), (b"hello world, not an image", "not a recognised image")):
        with pytest.raises(ImageDecodeError, match=fragment):
            load_for_model(data, CLIP_CFG, 10)
    good = encode(photo_like((300, 200)), quality=90)
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_for_model(good[: len(good) // 2], CLIP_CFG, 10)


@pytest.mark.parametrize("orientation", [1, 6])
def test_fast_draft_decode_is_close_to_exact(orientation):
    data = encode(photo_like((2000, 1500)), quality=90, exif=make_exif(orientation=orientation))
    fast, info = load_for_model(data, CLIP_CFG, max_megapixels=10, fast=True)
    exact, info_exact = load_for_model(data, CLIP_CFG, max_megapixels=10, fast=False)
    assert fast.shape == exact.shape == (224, 224, 3) and fast.dtype == np.uint8
    assert info == info_exact
    diff = np.abs(fast.astype(np.int16) - exact.astype(np.int16))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 12

    # The fast path really decodes at reduced scale: 1/2 keeps the short side >= 2 * 224.
    img, _ = open_image(data, 10)
    reduced = _decode_rgb(img, min_side=2 * 224)
    expected_size = (1000, 750) if orientation == 1 else (750, 1000)
    assert reduced.size == expected_size


def test_gif_first_frame():
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    rgb, info = load_rgb(data, 10)
    assert rgb.mode == "RGB" and (info.width, info.height) == (40, 30)
    mean = np.asarray(rgb, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    assert mean[0] > 200 and mean[1] < 40 and mean[2] < 40
    pixels, _ = load_for_model(data, PreprocessConfig(32, (0.5,) * 3, (0.5,) * 3), 10)
    assert pixels[..., 0].min() > 200


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I;16")
    rgb, info = load_rgb(encode(img, "PNG"), 10)
    got = np.asarray(rgb, dtype=np.int16)
    assert rgb.mode == "RGB" and (info.width, info.height) == (64, 48)
    want = (ramp >> 8).astype(np.int16)
    assert np.abs(got[..., 0] - want).max() <= 1
    assert np.array_equal(got[..., 0], got[..., 2])
    assert got[:, 0].max() <= 1 and got[:, -1].min() >= 254  # a ramp, not all white


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (64, 48))
    draw = ImageDraw.Draw(cmyk)
    draw.rectangle((0, 0, 31, 47), fill=(0, 255, 255, 0))  # red
    draw.rectangle((32, 0, 63, 47), fill=(255, 255, 0, 0))  # blue
    data = encode(cmyk)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    rgb, info = load_rgb(data, 10)
    assert rgb.mode == "RGB" and (info.width, info.height) == (64, 48)
    got = np.asarray(rgb, dtype=np.int16)
    left, right = got[:, :28].reshape(-1, 3).mean(axis=0), got[:, 36:].reshape(-1, 3).mean(axis=0)
    assert left[0] > 200 and left[1] < 50 and left[2] < 50
    assert right[2] > 200 and right[0] < 50 and right[1] < 50
    assert load_for_model(data, CLIP_CFG, 10)[0].shape == (224, 224, 3)


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_other_formats_decode(fmt, ext):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    arr = quadrants()
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    rgb, info = load_rgb(encode(Image.fromarray(arr), fmt, **kwargs), 10)
    assert (info.width, info.height) == (64, 48)
    assert np.array_equal(np.asarray(rgb), arr)


@pytest.mark.parametrize("mode", ["shortest", "squash", "longest"])
def test_resize_for_model_shapes(mode):
    cfg = PreprocessConfig(32, (0.5,) * 3, (0.5,) * 3, resize_mode=mode)
    for size in ((64, 48), (48, 64), (32, 32), (10, 100)):
        out = resize_for_model(Image.fromarray(quadrants(size)), cfg)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_cli_indexes_every_format(tmp_path, home):
    folder = tmp_path / "formats"
    folder.mkdir()
    arr = quadrants()
    for fmt, ext in (("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tiff"), ("GIF", "gif"), ("JPEG", "jpeg")):
        Path(folder / f"pic.{ext}").write_bytes(encode(Image.fromarray(np.roll(arr, len(ext), axis=1)), fmt))
    if features.check("webp"):
        (folder / "pic.webp").write_bytes(encode(Image.fromarray(arr), "WEBP"))
    summary = index_json(folder)
    assert summary["failed"] == 0 and summary["new"] == len(list(folder.iterdir()))
    assert run_cli("status", "--json").exit_code == 0


# -- Pillow's decompression-bomb guard belongs to the process, not to clipsearch --------------


def test_decoding_leaves_pillows_guard_and_the_warning_filters_alone(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # a 64x48 image (3072 px) is over it
    filters = list(warnings.filters)
    data = encode(Image.fromarray(quadrants()))
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's warning reaches the caller
        rgb, _info = load_rgb(data, max_megapixels=1)
    assert rgb.size == (64, 48)
    assert Image.MAX_IMAGE_PIXELS == 2000, "library code must not switch off Pillow's guard"
    assert warnings.filters == filters


def test_over_pillows_limit_is_an_actionable_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # refuses over 2000 px
    data = encode(Image.fromarray(quadrants()))
    with pytest.raises(ImageDecodeError, match="over the 0.001 MP limit; raise CLIPSEARCH_MAX_MEGAPIXELS"):
        open_image(data, max_megapixels=0.001)
    with pytest.raises(ImageDecodeError, match="over 0.002 megapixels, Pillow's decompression-bomb limit"):
        open_image(data, max_megapixels=1)


def test_an_index_run_lifts_pillows_guard_to_the_store_limit(tmp_path, home, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # below every test photo
    make_photos(tmp_path / "photos", 3)
    summary = index_json(tmp_path / "photos", env={"CLIPSEARCH_MAX_MEGAPIXELS": "0.01"})
    assert (summary["new"], summary["failed"]) == (3, 0)
    assert Image.MAX_IMAGE_PIXELS == 5000  # half the limit: Pillow refuses past twice its setting
