"""The torch-free tokenizer gives open_clip's ids, on thousands of seeded, varied strings."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from clipsearch.models.tokenizer import ClipTokenizer, clean

# fmt: off
WORDS = "a photo of the dog cat beach sunset red circle mountain's we're I'M they'll don't 2019 x42".split()  # noqa: SIM905
PIECES = [
    "café", "naïve", "Ångström", "cafe\u0301", "e\u0301\u0301", "Straße", "İstanbul", "ΣΊΣΥΦΟΣ", "ὀδυσσεύς",
    "東京タワー", "北京的猫", "한국어", "ภาษาไทย", "हिन्दी", "مرحبا بالعالم", "שלום", "Привет мир",
    "😀", "👩\u200d👩\u200d👧", "👍🏽", "🇫🇷", "❤️", "🐶🐱",
    "!!!", "...", "?!?!", "--", "«»", "“quoted”", "‘single’", "(x)", "[]{}", "#tag", "@user", "$9.99", "50%",
    "&amp;", "&lt;b&gt;", "&amp;amp;", "&#39;", "&#x1F600;", "&eacute;", "&nbsp;", "&#769;", "&amp;#769;", "&bogus;",
    "cafÃ©", "â€œmojibakeâ€\x9d", "Ã¼ber", "\x1b[31mred\x1b[0m",
    "\u00a0", "\u2028", "\u3000", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u200b", "\u180e", "\ufeff",
    "\x00", "\x07", "\x7f", "\u0080", "\u009d",
    "ＦＵＬＬ　ｗｉｄｔｈ", "ﬁne ﬂow", "½", "²", "①", "٣", "𝐁𝐨𝐥𝐝", "Ⅻ",
    "<start_of_text>", "<end_of_text>", "!!<start_of_text>x", "a<end_of_text>b", "<START_OF_TEXT>",
    "<|startoftext|>", "'S", "'Re", "''", "'",
]
SCRIPT_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
                 (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0x1F300, 0x1F64F), (0x2000, 0x206F)]
# fmt: on


def _random_chars(rng: random.Random, n: int) -> str:
    lo, hi = rng.choice(SCRIPT_RANGES)
    return "".join(chr(rng.randint(lo, hi)) for _ in range(n))


def _random_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.05:
        return " ".join(rng.choice(WORDS + PIECES) for _ in range(rng.randint(60, 400)))  # past 77 tokens
    if kind < 0.15:
        return _random_chars(rng, rng.randint(1, 40))
    parts = []
    for _ in range(rng.randint(0, 12)):
        parts.append(rng.choice(WORDS) if rng.random() < 0.5 else rng.choice(PIECES))
        if rng.random() < 0.2:
            parts.append(rng.choice(PIECES).upper())
    joiner = rng.choice([" ", "", "  ", "\t", " \n "])
    return joiner.join(parts)


def corpus(n: int = 3000, seed: int = 17) -> list[str]:
    rng = random.Random(seed)
    return ["", " ", "   \n\t "] + [_random_text(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def reference():
    open_clip = pytest.importorskip("open_clip")  # the dev install has it; the light install does not
    return open_clip.get_tokenizer("ViT-B-32")


@pytest.fixture(scope="module")
def ours() -> ClipTokenizer:
    return ClipTokenizer.from_vocab()


def test_ids_equal_open_clip_on_varied_strings(reference, ours):
    texts = corpus()
    want = reference(texts).numpy()
    got = ours.encode_batch(texts)
    assert got.dtype == np.int64 and got.shape == (len(texts), 77)
    mismatches = [texts[i] for i in np.flatnonzero((got != want).any(axis=1))]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:5]!r}"
    assert (want[:, -1] == ours.eot_id).sum() > 100  # the corpus exercises truncation


@pytest.mark.parametrize("length", [32, 5, 2])
def test_other_context_lengths_truncate_like_open_clip(reference, ours, length):
    texts = corpus(300, seed=3)
    np.testing.assert_array_equal(ours.encode_batch(texts, context_length=length), reference(texts, length).numpy())


def test_token_counts_match_open_clip(reference, ours):
    for text in corpus(300, seed=5):
        assert ours.count_tokens(text) == len(reference.encode(text)) + 2


def test_saved_file_round_trips(tmp_path, ours):
    texts = corpus(500, seed=9)
    path = tmp_path / "tokenizer.json"
    ours.save(path)
    loaded = ClipTokenizer.load(path)
    assert loaded.context_length == 77
    np.testing.assert_array_equal(loaded.encode_batch(texts), ours.encode_batch(texts))
    assert ClipTokenizer.load(path, context_length=32).encode_batch(["a dog"]).shape == (1, 32)


def test_cleaned_file_cached_for_the_next_start_gives_the_same_ids(tmp_path, reference, ours):
    texts = [*corpus(500, seed=11), "a<end_of_text>b <start_of_text> dog"]
    path = tmp_path / "tokenizer.json"
    ours.save(path)
    cache = tmp_path / "cache"
    first = ClipTokenizer.load(path, 77, cache_dir=cache)
    saved = list((cache / "tokenizers").glob("*.json"))
    assert len(saved) == 1 and not list((cache / "tokenizers").glob("*.tmp"))
    second = ClipTokenizer.load(path, 77, cache_dir=cache)  # from the cleaned copy
    assert json.loads(saved[0].read_text())["added_tokens"] == []
    np.testing.assert_array_equal(second.encode_batch(texts), first.encode_batch(texts))
    np.testing.assert_array_equal(second.encode_batch(texts), reference(texts).numpy())


def test_saved_file_alone_tokenizes_cleaned_text(tmp_path, ours):
    """What a reader like Immich gets from tokenizers.Tokenizer.from_file on cleaned text."""
    from tokenizers import Tokenizer

    path = tmp_path / "tokenizer.json"
    ours.save(path)
    plain = Tokenizer.from_file(str(path))
    texts = [t for t in corpus(500, seed=11) if "_of_text>" not in clean(t)]
    want = ours.encode_batch(texts)
    got = np.array([plain.encode(clean(t)).ids for t in texts], dtype=np.int64)
    np.testing.assert_array_equal(got, want)
    assert json.loads(path.read_text())["padding"]["pad_id"] == 0


def test_decode_reverses_encode(ours):
    ids = ours.encode_batch(["A Photo of Café 東京 😀!!"])[0]
    assert ours.decode(ids) == "a photo of café 東京 😀!!"
