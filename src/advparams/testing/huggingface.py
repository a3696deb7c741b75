"""Tiny Hugging Face folders for tests and examples, built from configs and trained in
seconds (nothing downloaded): a BERT text classifier with a word-level tokenizer trained
here, and a ViT image classifier on the synthetic images with an image processor config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

WORDS = [f"w{i}" for i in range(30)]
LABELS = ["north", "east", "south", "west"]
TEXT_LENGTH = 6
VIT_PROCESSOR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 16, "width": 16},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5],
    "image_std": [0.5],
}


def word_task(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Texts of six words whose label is the first word's number modulo 4 (by name)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, len(WORDS), (n, TEXT_LENGTH), generator=g)
    texts = [" ".join(WORDS[int(i)] for i in row) for row in ids]
    return texts, [LABELS[int(row[0]) % len(LABELS)] for row in ids]


def token_task(n: int, seed: int, vocab: int = 32, length: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[n, length]`` whose label is the first token's id modulo 4."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, vocab, (n, length), generator=g)
    return x, x[:, 0] % len(LABELS)


def token_bert(seed: int = 0) -> Any:
    """The 2-layer BERT classifier of ``tests/unit/models/test_huggingface.py``: built from a
    config, trained 120 steps on :func:`token_task` (4 classes), in eval mode."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=8, num_labels=len(LABELS), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model: Any = BertForSequenceClassification(config)
    x, y = token_task(2048, seed=seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(120):
        i = torch.arange(step * 64, step * 64 + 64) % len(y)
        opt.zero_grad()
        F.cross_entropy(model(x[i]).logits, y[i]).backward()
        opt.step()
    return model.eval()


def write_texts(path: str | os.PathLike[str], texts: list[str], labels: list[Any]) -> Path:
    """A JSONL of ``{"text": ..., "label": ...}`` lines."""
    lines = [json.dumps({"text": t, "label": y}) for t, y in zip(texts, labels, strict=True)]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def word_tokenizer() -> Any:
    """A word-level tokenizer of :data:`WORDS` with BERT's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


def tiny_bert_folder(path: str | os.PathLike[str], *, seed: int = 0, shard_size: str | None = None) -> Path:
    """A BERT classifier of :func:`word_task` trained to near 100 %, saved with its
    tokenizer by ``save_pretrained`` (in shards of ``shard_size`` if given)."""
    from transformers import BertConfig, BertForSequenceClassification

    tok = word_tokenizer()
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=16, num_labels=len(LABELS), hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pad_token_id=tok.pad_token_id,
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )  # fmt: skip
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    texts, labels = word_task(1024, seed=seed + 100)
    enc = tok(texts, padding=True, return_tensors="pt")
    y = torch.tensor([LABELS.index(label) for label in labels])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(150):
        i = torch.arange(step * 64, step * 64 + 64) % len(y)
        opt.zero_grad()
        out = model(enc["input_ids"][i], attention_mask=enc["attention_mask"][i])
        F.cross_entropy(out.logits, y[i]).backward()
        opt.step()
    model.eval()
    if shard_size:
        model.save_pretrained(str(path), max_shard_size=shard_size)
    else:
        model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return Path(path)


def tiny_vit_folder(path: str | os.PathLike[str], *, seed: int = 0, epochs: int = 4) -> Path:
    """A ViT classifier of the synthetic images (1x16x16, 10 classes) trained through its
    own image processor (:data:`VIT_PROCESSOR`), saved by ``save_pretrained``."""
    from transformers import ViTConfig, ViTForImageClassification

    from advparams.huggingface.data import prepare_images
    from advparams.testing import tiny_data
    from advparams.training import TrainConfig, train

    config = ViTConfig(  # type: ignore[call-arg]
        image_size=16, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=10, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    data = prepare_images(tiny_data(2000, seed=seed + 1), config.to_dict(), VIT_PROCESSOR)
    net: Any = ViTForImageClassification(config)
    model: Any = train(net, data, TrainConfig(epochs=epochs, lr=3e-3),
                  generator=torch.Generator().manual_seed(seed)).model  # fmt: skip
    model.save_pretrained(str(path))
    (Path(path) / "preprocessor_config.json").write_text(json.dumps(VIT_PROCESSOR, indent=2) + "\n")
    return Path(path)


__all__ = [
    "LABELS",
    "VIT_PROCESSOR",
    "tiny_bert_folder",
    "tiny_vit_folder",
    "token_bert",
    "token_task",
    "word_task",
    "write_texts",
]
