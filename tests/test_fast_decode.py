"""The fast decode path (JPEG draft + exact resize) must embed like the exact path and open_clip's own transform."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import make_exif
from PIL import Image, ImageDraw, ImageFilter

from clipsearch.imaging import load_for_model
from clipsearch.models import load_encoder


def photo(seed: int, size=(1600, 1200)) -> Image.Image:
    """Smooth colour waves, a few hard-edged shapes and fine grain: decodes like a camera JPEG."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [
        rng.uniform(70, 180) + rng.uniform(20, 60) * np.sin(x / rng.uniform(80, 300) + y / rng.uniform(80, 300) + c)
        for c in range(3)
    ]
    img = Image.fromarray(np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(15):
        cx, cy, r = (int(v) for v in (rng.integers(0, w), rng.integers(0, h), rng.integers(30, 250)))
        draw.ellipse((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1)), dtype=np.int16)
    arr = arr + rng.normal(0, 4, size=arr.shape).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def vit_b32():
    return load_encoder("random:ViT-B-32", device="cpu", runtime="torch")


def test_fast_path_embeds_like_the_exact_path_and_open_clip(vit_b32):
    import open_clip

    cfg = vit_b32.preprocess_cfg
    files = [jpeg(photo(0)), jpeg(photo(1)), jpeg(photo(2), exif=make_exif(orientation=6))]
    fast = np.stack([load_for_model(data, cfg, 100, fast=True)[0] for data in files])
    exact = np.stack([load_for_model(data, cfg, 100, fast=False)[0] for data in files])
    emb_fast = vit_b32.encode_images(fast)
    emb_exact = vit_b32.encode_images(exact)
    assert np.all(np.sum(emb_fast * emb_exact, axis=1) >= 0.999)

    # open_clip's own eval transform on the fully decoded, upright images (the reference preprocessing).
    transform = open_clip.image_transform(cfg.size, is_train=False, mean=cfg.mean, std=cfg.std)
    upright = [Image.open(io.BytesIO(data)) for data in files]
    upright[2] = upright[2].transpose(Image.Transpose.ROTATE_270)  # orientation 6
    with torch.inference_mode():
        ref = vit_b32.model.encode_image(torch.stack([transform(im.convert("RGB")) for im in upright]))
    emb_ref = torch.nn.functional.normalize(ref.float(), dim=-1).numpy()
    assert np.all(np.sum(emb_fast * emb_ref, axis=1) >= 0.999)

    # The bound means something: different pictures are far below it with these weights.
    between = emb_exact @ emb_exact.T
    assert between[np.triu_indices(3, 1)].max() < 0.99
