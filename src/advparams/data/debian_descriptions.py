"""``debian-descriptions``: a real text classification task available offline.

The one-line descriptions of Debian 12 (bookworm) main packages, labelled by their
section, for eight sections about a topic: admin, fonts, games, graphics, net, science,
sound, text. Package maintainers wrote them, not this project. The corpus is frozen in
``files/debian-descriptions-v1.jsonl`` (made by ``tools/freeze_debian_descriptions.py``
from the machine's package list; its docstring says how the lines were chosen and split),
485 training and 126 test lines per class, checked against :data:`SHA256` on every load.

Texts become token ids with a word-level vocabulary built from the training split
(:func:`vocabulary`; inferred: the issue leaves the tokenizer open): lower-cased runs of
letters and digits, the :data:`VOCAB_SIZE` - 3 most frequent training words (ties by
the word), then ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2. Each text is ``[CLS]`` and its
words, cut or padded to :data:`LENGTH` tokens (the longest text has 16 words).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import torch

from advparams.data.base import DATASETS, DatasetSpec, TokenDataset
from advparams.errors import DataError
from advparams.files import read_file, register_limit

FILE = Path(__file__).resolve().parent / "files" / "debian-descriptions-v1.jsonl"
SHA256 = "083117d335cfc6aaf92b4caff14746593b663e015802241c9b764a32cdd80f44"
"""SHA-256 of the frozen corpus, version 1."""
CLASSES = ("admin", "fonts", "games", "graphics", "net", "science", "sound", "text")
VOCAB_SIZE = 4096
LENGTH = 24
SPECIAL = ("[PAD]", "[UNK]", "[CLS]")
LIMIT = register_limit("debian-descriptions", 4 * 1024 * 1024)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The words of ``text`` as the vocabulary counts them."""
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[tuple[str, str, str], ...]:
    """Every line of the frozen corpus as ``(split, label, text)``.

    Raises:
        DataError: the file is missing or is not the frozen version 1.
    """
    body = read_file(FILE, what="debian-descriptions corpus", limit=LIMIT, error=DataError)
    if hashlib.sha256(body).hexdigest() != SHA256:
        raise DataError(f"{FILE} is not the frozen debian-descriptions v1 (SHA-256 differs); reinstall advparams")
    out = []
    for line in body.decode("utf-8").splitlines():
        row = json.loads(line)
        out.append((str(row["split"]), str(row["label"]), str(row["text"])))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The tokens by id: the special tokens, then the most frequent training words."""
    counts = Counter(w for split, _, text in corpus() if split == "train" for w in words(text))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: VOCAB_SIZE - len(SPECIAL)]
    return SPECIAL + tuple(ranked)


def encode(texts: list[str]) -> torch.Tensor:
    """Token ids ``[len(texts), LENGTH]`` of ``texts``."""
    index = {w: i for i, w in enumerate(vocabulary())}
    ids = torch.zeros(len(texts), LENGTH, dtype=torch.long)
    for row, text in enumerate(texts):
        tokens = [2] + [index.get(w, 1) for w in words(text)]
        tokens = tokens[:LENGTH]
        ids[row, : len(tokens)] = torch.tensor(tokens)
    return ids


def load(split: str, root: Path | None = None) -> TokenDataset:
    """The ``split`` of the corpus as token ids and section labels (``root`` is unused)."""
    rows = [(label, text) for s, label, text in corpus() if s == split]
    labels = torch.tensor([CLASSES.index(label) for label, _ in rows])
    return TokenDataset(
        encode([text for _, text in rows]),
        labels,
        num_classes=len(CLASSES),
        vocab_size=VOCAB_SIZE,
        name="debian-descriptions",
    )


DATASETS.register("debian-descriptions")(
    DatasetSpec(
        name="debian-descriptions",
        num_classes=len(CLASSES),
        in_channels=1,
        input_size=LENGTH,
        loader=load,  # type: ignore[arg-type]
        needs_root=False,
        description="Debian package descriptions by section (8 topics, frozen offline corpus), token ids",
        vocab_size=VOCAB_SIZE,
    )
)

__all__ = ["CLASSES", "LENGTH", "SHA256", "VOCAB_SIZE", "corpus", "encode", "load", "vocabulary", "words"]
