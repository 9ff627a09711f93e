"""CLIP's text tokenizer without torch or open_clip.

``ClipTokenizer`` gives the ids of open_clip's ``SimpleTokenizer`` (the tokenizer of every
open_clip model with CLIP's BPE vocabulary): text cleaned as open_clip cleans it (ftfy,
HTML entities unescaped twice, whitespace collapsed, lower-cased), split by CLIP's regex,
byte-level BPE with a ``</w>`` end-of-word suffix, then ``<start_of_text> ... <end_of_text>``
padded with 0 to the context length; a longer text is cut and keeps the end token last.

The BPE itself runs in HuggingFace ``tokenizers`` (Rust). The cleaning runs here in Python,
because ftfy has no ``tokenizers`` equivalent; a plain-ASCII text without ``&`` is left
unchanged by ftfy and skips it (and its import). The vocabulary ships with the package:
``vocab/clip_bpe_merges.txt.gz`` holds the 48,894 merges open_clip uses from OpenAI's
``bpe_simple_vocab_16e6.txt.gz`` (MIT licence, see ``vocab/NOTICE``).

``save()`` writes a standalone ``tokenizer.json`` (normaliser, start/end template,
truncation and padding included) that ``tokenizers.Tokenizer.from_file`` uses as it is, as
Immich's ML service does with the ``textual/tokenizer.json`` of its model layout.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

VOCAB_DIR = Path(__file__).with_name("vocab")
MERGES_FILE = VOCAB_DIR / "clip_bpe_merges.txt.gz"
DEFAULT_CONTEXT_LENGTH = 77
SOT, EOT = "<start_of_text>", "<end_of_text>"
# The names OpenAI's and HuggingFace's CLIP files give the same two ids (49406, 49407).
_SOT_NAMES = (SOT, "<|startoftext|>")
_EOT_NAMES = (EOT, "<|endoftext|>")
PAD_ID = 0  # open_clip pads with 0, the id of "!"
# open_clip's pattern; it is applied to lower-cased text, so its IGNORECASE changes nothing.
SPLIT_PATTERN = SOT + "|" + EOT + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# Characters ftfy may change in an ASCII text: '&' (entities), control characters, escapes.
_NEEDS_FTFY = re.compile(r"[^\t\n\r\x20-\x25\x27-\x7e]")


def clean(text: str) -> str:
    """open_clip's "lower" cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lower-cased."""
    if _NEEDS_FTFY.search(text):
        import ftfy  # ~50 ms to import; plain queries never need it

        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


def _byte_chars() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte value, in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(extra)}


def bundled_merges() -> list[tuple[str, str]]:
    lines = gzip.decompress(MERGES_FILE.read_bytes()).decode("utf-8").split("\n")
    return [tuple(line.split(" ")) for line in lines[1:] if line]  # type: ignore[misc]


def _bpe_pipeline(merges: Sequence[tuple[str, str]]):
    """A ``tokenizers.Tokenizer`` doing only split + byte-level + BPE (no cleaning, no specials)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    alphabet = list(_byte_chars().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in merges] + [SOT, EOT]
    vocab = {token: i for i, token in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return tok


def _first_id(tok, names: Sequence[str]) -> int:
    for name in names:
        found = tok.token_to_id(name)
        if found is not None:
            return int(found)
    raise ValueError(f"the vocabulary has none of the tokens {', '.join(names)}")


class ClipTokenizer:
    """Texts -> (N, context_length) int64 token ids, as open_clip's tokenizer gives them."""

    def __init__(self, tokenizer, context_length: int = DEFAULT_CONTEXT_LENGTH):
        # ``tokenizer`` splits and runs BPE only; cleaning, start/end and padding happen here.
        self._tok = tokenizer
        self.context_length = int(context_length)
        self.sot_id = _first_id(tokenizer, _SOT_NAMES)
        self.eot_id = _first_id(tokenizer, _EOT_NAMES)
        self._specials = {name: self.sot_id for name in _SOT_NAMES} | {name: self.eot_id for name in _EOT_NAMES}

    @classmethod
    def from_vocab(
        cls, merges: Sequence[tuple[str, str]] | None = None, context_length: int = DEFAULT_CONTEXT_LENGTH
    ) -> ClipTokenizer:
        """CLIP's BPE from a merges list (default: the vocabulary shipped in the package)."""
        return cls(_bpe_pipeline(bundled_merges() if merges is None else merges), context_length)

    @classmethod
    def load(cls, path: str | Path, context_length: int | None = None, cache_dir: Path | None = None) -> ClipTokenizer:
        """A ``tokenizer.json`` written by ``save()`` (or a HuggingFace CLIP tokenizer file).

        The context length defaults to the file's truncation length, else 77. With a `cache_dir`
        (and a context length), the cleaned file is kept there and read directly next time:
        half the CPU time of a cold query's tokenizer (~0.09 instead of ~0.17 CPU-s).
        """
        from tokenizers import Tokenizer

        path = Path(path)
        cached = _cleaned_path(path, cache_dir) if cache_dir is not None and context_length else None
        if cached is not None and cached.is_file():
            return cls(Tokenizer.from_file(str(cached)), int(context_length or DEFAULT_CONTEXT_LENGTH))
        spec = json.loads(path.read_text(encoding="utf-8"))
        if context_length is None:
            context_length = (spec.get("truncation") or {}).get("max_length") or DEFAULT_CONTEXT_LENGTH
        # The file's normaliser only approximates ftfy (clean() does the real thing) and its added
        # tokens would match "<end_of_text>" inside a word where open_clip does not: both go, as do
        # the template and padding this class applies itself.
        for key in ("normalizer", "post_processor", "truncation", "padding"):
            spec[key] = None
        spec["added_tokens"] = []
        cleaned = json.dumps(spec)
        if cached is not None:
            _write_quietly(cached, cleaned)
        return cls(Tokenizer.from_str(cleaned), context_length)

    def save(self, path: str | Path) -> None:
        """Write a standalone ``tokenizer.json`` (what ``tokenizers.Tokenizer.from_file`` reads).

        On cleaned text it gives this tokenizer's ids; its normaliser (NFC, whitespace,
        lower case) stands in for ftfy for readers that do no cleaning of their own.
        """
        Path(path).write_text(self.to_json(), encoding="utf-8")

    def to_json(self) -> str:
        from tokenizers import AddedToken, Regex, Tokenizer, normalizers, processors

        tok = Tokenizer.from_str(self._tok.to_str())
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        sot, eot = self._tok.id_to_token(self.sot_id), self._tok.id_to_token(self.eot_id)
        tok.add_special_tokens([AddedToken(sot, normalized=False), AddedToken(eot, normalized=False)])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{sot} $A {eot}", special_tokens=[(sot, self.sot_id), (eot, self.eot_id)]
        )
        tok.enable_truncation(max_length=self.context_length)
        tok.enable_padding(length=self.context_length, pad_id=PAD_ID, pad_token=self._tok.id_to_token(PAD_ID))
        return tok.to_str(pretty=False)

    def tokenizer_config(self) -> dict:
        """The ``tokenizer_config.json`` beside ``tokenizer.json`` in Immich's layout (it reads pad_token)."""
        return {
            "bos_token": self._tok.id_to_token(self.sot_id),
            "eos_token": self._tok.id_to_token(self.eot_id),
            "pad_token": self._tok.id_to_token(PAD_ID),
            "model_max_length": self.context_length,
        }

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without start/end tokens and without truncation."""
        cleaned = clean(text)
        encoding = self._tok.encode(cleaned, add_special_tokens=False)
        if any(name in cleaned for name in self._specials):
            return self._with_specials(cleaned, encoding)
        return encoding.ids

    def _with_specials(self, cleaned: str, encoding) -> list[int]:
        """Map a word that is exactly a special token's name to its id, as open_clip does."""
        token_ids, offsets = encoding.ids, encoding.offsets  # each property access copies the list
        groups: dict[int, list[int]] = {}
        for index, word in enumerate(encoding.word_ids):
            groups.setdefault(word, []).append(index)
        ids: list[int] = []
        for members in groups.values():
            special = self._specials.get(cleaned[offsets[members[0]][0] : offsets[members[-1]][1]])
            ids.extend([special] if special is not None else (token_ids[i] for i in members))
        return ids

    def count_tokens(self, text: str) -> int:
        """Tokens a text needs with its start and end tokens (more than context_length: it is cut)."""
        return len(self.encode(text)) + 2

    def encode_batch(self, texts: str | Sequence[str], context_length: int | None = None) -> np.ndarray:
        """(N, context_length) int64 ids: start, tokens, end, zeros; a long text is cut, end kept last."""
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        out = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out

    __call__ = encode_batch

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids up to the end token (start token dropped); for messages and debugging."""
        byte_of = {char: byte for byte, char in _byte_chars().items()}
        kept = []
        for i in (int(i) for i in ids):
            if i == self.eot_id:
                break
            if i != self.sot_id:
                kept.append(self._tok.id_to_token(i))
        raw = bytes(byte_of[c] for c in "".join(kept) if c in byte_of)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ").strip()


def _cleaned_path(path: Path, cache_dir: Path) -> Path:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return cache_dir / "tokenizers" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def _write_quietly(target: Path, text: str) -> None:
    """Write atomically; a cache that cannot be written only costs the next start its speed."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
