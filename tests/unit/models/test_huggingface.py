"""A real Hugging Face ``transformers`` sequence classifier (built from a small config,
randomly initialised, trained briefly on a synthetic token task: nothing downloaded)
locked, sealed and unlocked bit-exactly through the library's own API, its output object
(``SequenceClassifierOutput``) read by the detected adapter and its parameter names kept
(the key refers to the user's own module, not to a wrapper)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")

from advparams.keys import load_key, save_key  # noqa: E402
from advparams.metrics import accuracy  # noqa: E402
from advparams.metrics.accuracy import logits_of  # noqa: E402
from advparams.schemes import SCHEMES  # noqa: E402
from advparams.testing.huggingface import token_bert, token_task  # noqa: E402


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    return token_bert(seed=0)  # the BERT of docs/transformers.md's search table, seed 0


def test_the_output_object_is_read_by_the_detected_adapter(classifier: torch.nn.Module) -> None:
    x, _ = token_task(5, seed=2)
    raw = classifier(x)
    assert not isinstance(raw, torch.Tensor)  # a SequenceClassifierOutput
    assert torch.equal(logits_of(classifier, x), raw.logits)


@pytest.mark.parametrize("scheme", ["advparams", "hardened"])
def test_a_hugging_face_classifier_is_locked_sealed_and_unlocked_bit_exactly(
    classifier: torch.nn.Module, scheme: str, tmp_path: object
) -> None:
    test = token_task(512, seed=3)
    before = accuracy(classifier, test)
    assert before > 0.9, f"the tiny classifier did not learn its task ({before:.3f})"
    original = {k: v.clone() for k, v in classifier.state_dict().items()}

    # the greedy search: on this BERT the batched default needed 590 values where it needs 43 (docs/models.md)
    options = {"num_samples": 256, "max_params": 200, "search": "greedy"} if scheme == "advparams" else {}
    options["num_samples"] = 256
    result = SCHEMES.build(scheme, options).lock(classifier, token_task(1024, seed=4))
    assert all(torch.equal(v, original[k]) for k, v in classifier.state_dict().items())  # input untouched
    locked_acc = accuracy(result.model, test)
    assert locked_acc < before - 0.5, f"{scheme} left {locked_acc:.3f} of {before:.3f}"
    if scheme == "advparams":
        assert result.report.target_met and result.report.params_changed > 0
        names = set(classifier.state_dict())
        assert {e.name for e in result.key.entries} <= names  # the module's own names, no wrapper prefix
        assert any(e.name.startswith(("bert.", "classifier.")) for e in result.key.entries)

    path = tmp_path / "hf.key"  # type: ignore[operator]
    save_key(result.key, path, passphrase=b"correct horse")
    with pytest.raises(Exception, match="passphrase"):
        load_key(path)
    key = load_key(path, passphrase=b"correct horse")
    restored = SCHEMES.get(scheme)().unlock(result.model, key)
    assert all(torch.equal(v, original[k]) for k, v in restored.state_dict().items())
    assert accuracy(restored, test) == before


def test_the_batched_search_with_its_transformer_options_needs_no_more_values_than_the_greedy(
    classifier: torch.nn.Module,
) -> None:
    # docs/transformers.md, "The batched search on transformers" (the table's seed 0)
    data = token_task(1024, seed=4)
    counts = {}
    for search, extra in (("greedy", {}), ("batched", {"grow_without_drop": False, "prune_each": True})):
        options = {"num_samples": 256, "max_params": 1000, "search": search, **extra}
        report = SCHEMES.build("advparams", options).lock(classifier, data).report
        assert report.target_met, (search, report.problem())
        counts[search] = report.params_changed
    assert counts["batched"] <= counts["greedy"], counts
