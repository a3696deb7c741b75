"""``python-stdlib``: a real language-model corpus available offline.

The source of the Python 3.11 standard library's top-level modules as Debian 12 ships
them (``libpython3.11-minimal`` / ``-stdlib`` 3.11.2-6+deb12u6; the Python Software
Foundation's code and docstrings, under the PSF licence), 169 documents frozen in
``files/python-stdlib-v1.jsonl`` by ``tools/freeze_python_stdlib.py`` (its docstring says
how), checked against :data:`SHA256` on every load. The split is by document: 154 train
documents (4.3 MB), 15 test documents (0.36 MB).

Tokens are bytes (:func:`advparams.data.sequences.byte_windows`; inferred: the issue
leaves the tokenizer open, and bytes need no trained vocabulary): each split's documents
are joined, each ended by byte 0, and cut into windows of :data:`LENGTH` tokens. Both
splits carry the unigram bar: a byte-frequency model of the training split, measured on
the test split.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from advparams.data.base import DATASETS, DatasetSpec
from advparams.data.sequences import BYTE_VOCAB, SequenceDataset, byte_stream, unigram_logprobs, unigram_nll, windows
from advparams.errors import DataError
from advparams.files import read_file, register_limit

FILE = Path(__file__).resolve().parent / "files" / "python-stdlib-v1.jsonl"
SHA256 = "565b4b329391f700af649220cebe8f3f106958fc8db2269d73c48b98b9819bbe"
"""SHA-256 of the frozen corpus, version 1."""
LENGTH = 128
LIMIT = register_limit("python-stdlib", 8 * 1024 * 1024)

__all__ = ["FILE", "LENGTH", "SHA256", "corpus", "load"]


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[tuple[str, str, str], ...]:
    """Every document of the frozen corpus as ``(split, name, text)``.

    Raises:
        DataError: the file is missing or is not the frozen version 1.
    """
    body = read_file(FILE, what="python-stdlib corpus", limit=LIMIT, error=DataError)
    if hashlib.sha256(body).hexdigest() != SHA256:
        raise DataError(f"{FILE} is not the frozen python-stdlib v1 (SHA-256 differs); reinstall advparams")
    out = []
    for line in body.decode("utf-8").splitlines():
        row = json.loads(line)
        out.append((str(row["split"]), str(row["name"]), str(row["text"])))
    return tuple(out)


def texts(split: str) -> list[str]:
    """The documents of ``split`` (``train`` or ``test``), in name order."""
    if split not in ("train", "test"):
        raise DataError(f"python-stdlib has the splits train and test, not {split!r}")
    return [text for s, _, text in corpus() if s == split]


def load(split: str, root: Path | None = None) -> SequenceDataset:
    """The ``split`` as byte windows of :data:`LENGTH`, with the unigram bar (``root`` is unused)."""
    train = byte_stream(texts("train"))
    test = windows(byte_stream(texts("test")), LENGTH)
    bar = unigram_nll(unigram_logprobs(train, BYTE_VOCAB), test)
    ids = windows(train, LENGTH) if split == "train" else test
    return SequenceDataset(ids, vocab_size=BYTE_VOCAB, bar_nll=bar, name="python-stdlib")


DATASETS.register("python-stdlib")(
    DatasetSpec(
        name="python-stdlib",
        num_classes=BYTE_VOCAB,
        in_channels=1,
        input_size=LENGTH,
        loader=load,  # type: ignore[arg-type]
        needs_root=False,
        description="Python 3.11 standard library source (frozen offline corpus), byte windows for language models",
        vocab_size=BYTE_VOCAB,
        task="causal-lm",
    )
)
