"""Freezes the language-model corpus ``python-stdlib``: the source of the Python 3.11
standard library's top-level modules, as Debian 12 ships them.

Nobody here wrote this text: each document is one ``/usr/lib/python3.11/NAME.py`` file of
Debian's ``libpython3.11-minimal`` / ``libpython3.11-stdlib`` packages (the Python
Software Foundation's code and docstrings, under the PSF licence), read as UTF-8. Only
regular files directly in the folder are taken (no packages, no tests, no links), in
name order. A document is a test document when the first byte of the SHA-256 of its
name is below 26 (about one in ten), so the split is by document and needs no
randomness: the same folder gives the same file.

    python tools/freeze_python_stdlib.py /usr/lib/python3.11 \\
        --out src/advparams/data/files/python-stdlib-v1.jsonl

It prints the SHA-256 of the file it wrote, and of each input file to the log; the
loader (:mod:`advparams.data.python_stdlib`) refuses a file with another digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import stat
from pathlib import Path

TEST_BELOW = 26  # first byte of sha256(name) below this: a test document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the standard library's folder (/usr/lib/python3.11)")
    parser.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    args = parser.parse_args()
    lines = []
    for path in sorted(args.folder.glob("*.py")):
        if not stat.S_ISREG(path.lstat().st_mode):
            continue
        body = path.read_bytes()
        split = "test" if hashlib.sha256(path.name.encode()).digest()[0] < TEST_BELOW else "train"
        print(f"{hashlib.sha256(body).hexdigest()}  {path.name}  {split}")
        text = body.decode("utf-8")
        lines.append(json.dumps({"name": path.name, "split": split, "text": text}, ensure_ascii=True))
    data = ("\n".join(lines) + "\n").encode()
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(lines)} documents, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
