"""Offline stand-ins for the Hugging Face hub's xlm-roberta-base files, for the multilingual model tests.

open_clip builds an XLM-RoBERTa text tower from the hub's `config.json` and tokenizer files of
`xlm-roberta-base`. The hub is unreachable here, so a hub cache is written in huggingface_hub's own
layout (models--OWNER--NAME/snapshots/REV/, refs/main) and HF_HUB_OFFLINE makes transformers read it:
everything after the download is the real code. The files:

  config.json      xlm-roberta-base's real sizes (12 layers, 768 wide, 250,002 tokens), or a tiny
                   XLM-RoBERTa for plumbing tests (TINY_REPO: 2 layers, 64 wide)
  tokenizer.json   a SentencePiece-style Unigram tokenizer (NFKC, Metaspace, <s> $A </s>, XLM-R's
                   special ids 0-3) trained here on a few phrases in six scripts; the real one has 250k
                   pieces, this one a few hundred, all below both configs' vocabulary size
"""

from __future__ import annotations

import json
from pathlib import Path

BASE_REPO = "xlm-roberta-base"
TINY_REPO = "clipsearch-tests/xlm-roberta-tiny"
REVISION = "0" * 40
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0-3, as in XLM-RoBERTa
BOS, PAD, EOS, UNK = range(4)

# Queries in each script the tests search with, and the words around them the tokenizer learns.
QUERIES = {
    "japanese": "赤い三角形",
    "arabic": "دائرة زرقاء",
    "russian": "зелёный квадрат",
    "hindi": "पीली तारा",
    "emoji": "🐶🌊",
    "english": "a red triangle",
}
_CORPUS = [
    *QUERIES.values(),
    "青い円の写真",
    "緑の四角形と黄色い星",
    "مثلث أحمر ونجمة صفراء",
    "صورة قطة على الشاطئ",
    "красный треугольник и синий круг",
    "фотография собаки на пляже",
    "लाल त्रिभुज और नीला वृत्त",
    "समुद्र तट पर कुत्ते की तस्वीर",
    "🔺🔵🟩⭐ 🐱🏖️📷",
    "a blue circle and a green square",
    "a photo of a dog on the beach",
]

XLMR_BASE_CONFIG = {
    "architectures": ["XLMRobertaForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 514,
    "model_type": "xlm-roberta",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "output_past": True,
    "pad_token_id": 1,
    "position_embedding_type": "absolute",
    "type_vocab_size": 1,
    "use_cache": True,
    "vocab_size": 250002,
}
# Fewer and narrower layers, for tests about plumbing rather than the architecture's sizes.
XLMR_TINY_CONFIG = {
    **XLMR_BASE_CONFIG,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "max_position_embeddings": 80,
    "vocab_size": 1000,
}


def build_tokenizer(out: Path) -> Path:
    """tokenizer.json + tokenizer_config.json in `out`, as transformers saves XLM-RoBERTa's."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=600, special_tokens=list(SPECIALS), unk_token="<unk>")
    tok.train_from_iterator(_CORPUS * 4, trainer)
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", BOS), ("</s>", EOS)]
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    fast.save_pretrained(str(out))
    assert fast.vocab_size < XLMR_TINY_CONFIG["vocab_size"]
    return out


def write_repo(cache: Path, repo: str, config: dict, tokenizer_dir: Path) -> Path:
    """One model repository in the hub cache's layout; returns its snapshot folder."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)
    (snapshot / "config.json").write_text(json.dumps(config, indent=2))
    for f in tokenizer_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    return snapshot


def build_hub_cache(cache: Path) -> Path:
    """A hub cache holding xlm-roberta-base (real sizes) and TINY_REPO, both with the tokenizer above."""
    tokenizer_dir = build_tokenizer(cache.parent / "xlmr-tokenizer")
    write_repo(cache, BASE_REPO, XLMR_BASE_CONFIG, tokenizer_dir)
    write_repo(cache, TINY_REPO, XLMR_TINY_CONFIG, tokenizer_dir)
    return cache
