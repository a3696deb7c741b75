"""Freezes the text classification corpus ``debian-descriptions``: the one-line
descriptions of Debian 12 (bookworm) main packages, labelled by their section.

Nobody here wrote this text: each line is the ``Description:`` a package's maintainers
wrote, as the machine's package list (``/var/lib/apt/lists/*bookworm_main_binary-amd64_Packages.lz4``)
holds it. The classes are eight sections whose packages are about a topic (not about a
programming language or a packaging role): admin, fonts, games, graphics, net, science,
sound, text. A description that appears under two sections is dropped, and the rest are
deduplicated; descriptions that differ only by a trailing ``(data files)``-style note or a
`` - suffix`` form one group, and a group is wholly in train or in test (so that near-copies
never straddle the split). Test takes the groups whose SHA-256 falls in one fifth; each
class is then cut to the same number of train and of test lines (the smallest class's),
taken in SHA-256 order. Nothing here is random: the same package list gives the same file.

    python tools/freeze_debian_descriptions.py \\
        /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4 \\
        --out src/advparams/data/files/debian-descriptions-v1.jsonl

It prints the SHA-256 of its input and of the file it wrote; the loader
(:mod:`advparams.data.debian_descriptions`) refuses a file with another digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

CLASSES = ("admin", "fonts", "games", "graphics", "net", "science", "sound", "text")
TEST_SHARE = 5  # one group in five is a test group


def read_packages(path: Path) -> bytes:
    if path.suffix == ".lz4":
        return subprocess.run(["lz4", "-dc", str(path)], check=True, capture_output=True).stdout
    return path.read_bytes()


def stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key] = value.strip()
        if "Section" in fields and "Description" in fields:
            out.append(fields)
    return out


def group_of(text: str) -> str:
    t = re.sub(r"\s*\([^()]*\)\s*$", "", text.lower())
    t = re.sub(r"\s+-{1,2}\s+.*$", "", t)
    return t.strip()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packages", type=Path, help="a Debian Packages file (plain or .lz4)")
    ap.add_argument("--out", type=Path, required=True, help="the JSON-lines file to write")
    args = ap.parse_args()
    raw = read_packages(args.packages)
    sections: dict[str, set[str]] = defaultdict(set)
    package_of: dict[tuple[str, str], str] = {}
    for fields in stanzas(raw.decode("utf-8")):
        section = fields["Section"].split("/")[-1]
        text = " ".join(fields["Description"].split())
        sections[text].add(section)
        package_of.setdefault((section, text), fields["Package"])
    chosen: dict[str, dict[str, list[str]]] = {c: {"train": [], "test": []} for c in CLASSES}
    for text, where in sections.items():
        if len(where) != 1 or not text:
            continue
        (section,) = where
        if section in chosen:
            split = "test" if int(digest(group_of(text)), 16) % TEST_SHARE == 0 else "train"
            chosen[section][split].append(text)
    per = {s: min(len(chosen[c][s]) for c in CLASSES) for s in ("train", "test")}
    lines = []
    for split in ("train", "test"):
        for c in CLASSES:
            for text in sorted(chosen[c][split], key=digest)[: per[split]]:
                lines.append({"split": split, "label": c, "text": text, "package": package_of[(c, text)]})
    body = "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines).encode("utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(body)
    print(f"input  sha256 {hashlib.sha256(raw).hexdigest()} ({args.packages})")
    print(f"output sha256 {hashlib.sha256(body).hexdigest()} ({args.out}: {len(lines)} lines, {per} per class)")


if __name__ == "__main__":
    main()
