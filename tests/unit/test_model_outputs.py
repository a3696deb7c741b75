"""Every verb that runs a model reads its output through the output adapter: a model that
returns a tensor, a tuple, a dict or a Hugging Face output object is trained, locked,
traced (white- and black-box), watermarked, fingerprinted, backdoored and screened from
the command line alike (black-box tracing read the raw output and failed on a dict)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli_helpers import run

MODULE = '''
import torch
from torch import nn
from advparams.models import MODELS


class Net(nn.Module):
    """A small convolutional net whose forward returns its scores as KIND."""

    def __init__(self, kind, num_classes=10, in_channels=1, input_size=16):
        super().__init__()
        self.kind = kind
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(8 * (input_size // 2) ** 2, 32), nn.ReLU(),
        )
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        features = self.body(x)
        scores = self.head(features)
        if self.kind == "tensor":
            return scores
        if self.kind == "tuple":
            return scores, features
        if self.kind == "dict":
            return {"logits": scores, "features": features}
        from transformers.modeling_outputs import SequenceClassifierOutput
        return SequenceClassifierOutput(logits=scores, hidden_states=(features,))


for _kind in ("tensor", "tuple", "dict", "hf"):
    def _build(num_classes=10, in_channels=1, input_size=16, _kind=_kind):
        return Net(_kind, num_classes, in_channels, input_size)
    _build.__doc__ = f"A small net returning a {_kind}."
    MODELS.register(f"outputs-{_kind}")(_build)
'''

KINDS = ("tensor", "tuple", "dict", "hf")


@pytest.fixture(scope="module")
def module(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("outputs") / "output_kinds.py"
    path.write_text(MODULE)
    return path


@pytest.fixture(scope="module")
def nulls(tmp_path_factory) -> list[Path]:
    """Two independent models of the task, the null models of the verify commands."""
    from advparams.cli import main

    d = tmp_path_factory.mktemp("nulls")
    for seed in (1, 2):
        argv = ["train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "2", "--seed", str(seed)]
        assert main([*argv, "--out", str(d / f"n{seed}"), "--json"]) == 0
    return [d / "n1", d / "n2"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_verb_reads_the_models_output_through_the_adapter(capsys, tmp_path, module, nulls, kind) -> None:
    d = tmp_path

    def ok(*argv: object) -> dict:
        code, out, err = run(capsys, "--import", module, *argv, "--json")
        assert code in (0, 3), f"{argv[0]} {argv[1]}: {err}"  # 3: a yes/no command's no
        return json.loads(out)

    ok("train", "--model", f"outputs-{kind}", "--dataset", "synthetic", "--epochs", "2", "--out", d / "m")
    assert ok("evaluate", d / "m")["accuracy"] > 0.5
    # the active protection and per-user keys, traced both ways
    ok("lock", d / "m", "--out", d / "a", "--key", d / "a.key", "--allow-partial")
    ok("lock", d / "m", "--scheme", "hardened", "--set", "dither=23", "--out", d / "L", "--key", d / "o.key",
       "--allow-partial")  # fmt: skip
    assert ok("unlock", d / "L", "--key", d / "o.key", "--out", d / "u", "--eval")["accuracy_unlocked"] > 0.5
    ok("keys", "users", "create", d / "r.json", "alice", "bob", "--set", "positions=256")
    ok("keys", "issue", d / "L", "--key", d / "o.key", "--users", d / "r.json", "--user", "bob", "--out", d / "b.key")
    ok("unlock", d / "L", "--key", d / "b.key", "--out", d / "bob")
    tracing = ["--key", d / "o.key", "--locked", d / "L", "--users", d / "r.json"]
    assert ok("trace", d / "bob", *tracing)["accused"] == ["bob"]
    owner = ["--key", d / "o.key", "--users", d / "r.json"]
    ok("keys", "queries", d / "L", *owner, "--out", d / "q.safetensors", "--pool", "300", "--set", "queries=64")
    assert ok("trace", d / "bob", *tracing, "--queries", d / "q.safetensors", "--queries-only")["queries"] == 64
    # passive protection: a watermark, fingerprints of both schemes
    ok("watermark", "embed", d / "m", "--out", d / "w", "--key", d / "w.wmkey", "--set", "num_keys=20",
       "--set", "epochs=2")  # fmt: skip
    ok("watermark", "verify", d / "w", "--key", d / "w.wmkey", "--null", *nulls)
    for scheme, size in (("ipguard", "points=20"), ("infip", "probes=20")):
        ok("fingerprint", "extract", d / "m", "--scheme", scheme, "--out", d / f"{scheme}.fp", "--set", size,
           *(["--set", "steps=30"] if scheme == "ipguard" else []))  # fmt: skip
        ok("fingerprint", "verify", d / "m", "--fingerprint", d / f"{scheme}.fp", "--null", *nulls)
    # a backdoor and the detectors
    ok("backdoor", "implant", d / "m", "--out", d / "bd", "--trigger", d / "t.trigger", "--epochs", "1")
    ok("backdoor", "evaluate", d / "bd", "--trigger", d / "t.trigger", "--samples", "50")
    for detector in ("strip", "adversarial", "neural-cleanse"):
        fast = {"neural-cleanse": ["--set", "steps=5"], "adversarial": ["--set", "universal_steps=10"]}
        opts = fast.get(detector, [])
        ok("detect", d / "bd", "--detector", detector, "--trigger", d / "t.trigger", "--samples", "40",
           "--clean-samples", "60", *opts)  # fmt: skip
