import pytest
import torch
from torch import nn

from advparams import AdvParams, AdvParamsConfig, unlock
from advparams.errors import AdvParamsError, ConfigError
from advparams.schemes.advparams import move_scores, select_candidates
from advparams.testing import ConstantClassifier, TinyConvNet, state_equal


def test_move_scores_by_hand() -> None:
    grad = torch.tensor([2.0, -1.0, 3.0, -4.0, 0.5])
    value = torch.tensor([0.0, 0.0, 0.9, -1.0, 0.0])
    # bounds [-1, 1], reach 0.5: rooms in the ascent direction are 1, 1, 0.1, 0, 1
    gain = move_scores(grad, value, -1.0, 1.0, 0.5, "gain")
    assert torch.allclose(gain, torch.tensor([1.0, 0.5, 0.3, 0.0, 0.25]))
    plain = move_scores(grad, value, -1.0, 1.0, 0.5, "gradient")
    assert torch.allclose(plain, torch.tensor([2.0, 1.0, 3.0, 0.0, 0.5]))


def test_candidates() -> None:
    net = TinyConvNet()
    names = set(select_candidates(net, AdvParamsConfig()))
    assert names == {"conv.weight", "depthwise.weight", "head.weight"}  # no biases, no BatchNorm
    assert "bn.weight" in select_candidates(net, AdvParamsConfig(include_1d=True))
    assert set(select_candidates(net, AdvParamsConfig(include=("conv.*",)))) == {"conv.weight"}
    assert "head.weight" not in select_candidates(net, AdvParamsConfig(exclude=("head.*",)))
    with pytest.raises(ConfigError, match="no parameter matches"):
        AdvParams(AdvParamsConfig(include=("nothing",))).lock(net, (torch.zeros(4, 1, 16, 16), torch.zeros(4).long()))


def test_locked_values_stay_inside_the_original_range(trained) -> None:
    model, data = trained
    cfg = AdvParamsConfig(margin=0.05)
    res = AdvParams(cfg).lock(model, data)
    original = dict(model.named_parameters())
    for e in res.key.entries:
        w = original[e.name].detach()
        lo, hi = float(w.min()), float(w.max())
        r = hi - lo
        assert float(e.locked.min()) >= lo + cfg.margin * r - 1e-6
        assert float(e.locked.max()) <= hi - cfg.margin * r + 1e-6
    assert res.report.params_changed == res.key.num_changed == sum(res.report.changed_per_tensor.values())


def test_budget_and_target_stops(trained) -> None:
    model, data = trained
    res = AdvParams(AdvParamsConfig(max_params=2)).lock(model, data)
    assert res.report.params_changed == 2 and res.report.stopped == "budget"
    res = AdvParams(AdvParamsConfig(target_accuracy=0.5)).lock(model, data)
    assert res.report.stopped == "target" and res.report.lock_accuracy_after <= 0.5
    assert res.report.target_accuracy == 0.5
    default = AdvParams().lock(model, data)
    assert default.report.target_accuracy == pytest.approx(0.12)  # chance (1/10) + 2 points


def test_selection_gradient_also_locks(trained) -> None:
    model, data = trained
    res = AdvParams(AdvParamsConfig(selection="gradient")).lock(model, data)
    assert res.report.stopped == "target"


def test_model_already_at_chance_changes_nothing() -> None:
    model = ConstantClassifier(num_classes=10, label=0)
    x, y = torch.zeros(100, 3), torch.arange(100) % 10
    res = AdvParams(AdvParamsConfig(include_1d=True, holdout=0.0, search_samples=100)).lock(model, (x, y))
    assert res.report.params_changed == 0 and res.report.stopped == "target"


def test_non_classifier_output_is_a_clear_error() -> None:
    class Bad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            return {"features": self.lin(x)}  # no "logits": no adapter finds scores in it

    with pytest.raises(AdvParamsError, match=r"class scores of shape \[N, C\]"):
        AdvParams().lock(Bad(), (torch.zeros(4, 3), torch.zeros(4).long()))


@pytest.mark.parametrize(
    "bad",
    [
        {"max_params": 0},
        {"step": 0},
        {"margin": 0.5},
        {"target_accuracy": 2},
        {"selection": "random"},
        {"include": "conv*"},
        {"objective": "mse"},
        {"loss_cap": 0},
    ],
)
def test_config_validation(bad) -> None:
    with pytest.raises(ValueError):
        AdvParamsConfig(**bad)


def test_lock_objective_by_hand() -> None:
    from advparams.schemes.advparams import lock_objective

    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]])
    labels = torch.tensor([0, 1])
    ce = torch.tensor([torch.log(torch.tensor(2.0)).item(), 20.0])  # ln 2, and 20 (+ e^-20, negligible)
    assert torch.allclose(lock_objective(logits, labels, "ce", 4.6), ce.sum(), atol=1e-4)
    assert torch.allclose(lock_objective(logits, labels, "capped-ce", 4.6), ce[0] + 4.6, atol=1e-4)


def test_plain_ce_objective_also_locks(trained) -> None:
    model, data = trained
    res = AdvParams(AdvParamsConfig(objective="ce")).lock(model, data)
    assert res.report.stopped == "target" and res.report.lock_accuracy_after <= 0.12
    assert AdvParams().config.objective == "capped-ce"


@pytest.mark.parametrize("arch", ["tinyconv", "attention", "lenet", "vgg"])
def test_reaches_the_target_on_several_architectures(arch) -> None:
    from advparams.metrics import accuracy
    from advparams.models import build_model
    from advparams.testing import TinyAttentionNet, TinyConvNet, tiny_trained_classifier

    factories = {
        "tinyconv": lambda: TinyConvNet(),
        "attention": lambda: TinyAttentionNet(),
        "lenet": lambda: build_model("lenet", {"input_size": 16}),
        "vgg": lambda: build_model("vgg", {"input_size": 16, "width": 8}),
    }
    torch.manual_seed(0)
    model, data = tiny_trained_classifier(seed=0, model=factories[arch](), epochs=4)
    res = AdvParams().lock(model, data)
    assert res.report.stopped == "target"
    assert accuracy(res.model, data) <= res.report.target_accuracy + 1e-6


def test_batched_search_counts_its_passes_and_holds_out_what_its_gradients_do_not_use(trained) -> None:
    model, data = trained
    res = AdvParams(num_samples=400, search_samples=100, prune=False).lock(model, data)
    rep = res.report
    assert rep.stopped == "target" and rep.target_met
    assert rep.holdout_samples == 300  # every sample the gradients do not use
    assert rep.holdout_accuracy_after is not None and rep.holdout_accuracy_after <= rep.target_accuracy
    assert rep.search_accuracy_after is not None and rep.search_accuracy_after <= rep.target_accuracy
    # one forward+backward over 100 of 400 samples per round, forwards over the held-out 300 for checks
    assert rep.backward_passes == pytest.approx(0.25 * rep.rounds)
    assert rep.forward_passes >= rep.backward_passes + 0.75
    overall = (100 * rep.search_accuracy_after + 300 * rep.holdout_accuracy_after) / 400
    assert rep.lock_accuracy_after == pytest.approx(overall)


def test_pruning_undoes_changes_the_lock_does_not_need_and_keeps_the_stop_rule(trained) -> None:
    model, data = trained
    plain = AdvParams(num_samples=400, search_samples=100, prune=False).lock(model, data).report
    pruned_lock = AdvParams(num_samples=400, search_samples=100).lock(model, data)
    pruned = pruned_lock.report
    assert pruned.target_met and pruned.stopped == "target"
    assert 1 <= pruned.params_changed <= plain.params_changed
    # one more gradient, at the locked state, ranks the changes
    assert pruned.backward_passes == pytest.approx(0.25 * (pruned.rounds + 1))
    assert state_equal(unlock(pruned_lock.model, pruned_lock.key), model)


def test_greedy_search_without_holdout_is_the_old_search(trained) -> None:
    model, data = trained
    res = AdvParams(search="greedy", holdout=0.0).lock(model, data)
    rep = res.report
    assert rep.holdout_samples == 0 and rep.holdout_accuracy_after is None
    assert rep.rounds >= rep.params_changed  # one scalar per gradient
    assert rep.backward_passes == pytest.approx(rep.rounds)  # each gradient over every lock sample
    assert rep.forward_passes > rep.backward_passes  # plus the line searches' forward passes


def test_the_held_out_check_asks_for_a_margin_of_standard_errors_but_never_below_half_way_to_chance() -> None:
    from advparams.schemes.advparams_search import holdout_target
    from advparams.schemes.lock_samples import LockBatches
    from advparams.schemes.locking import LockSetup

    def held(n: int) -> LockBatches:
        batches = LockBatches.__new__(LockBatches)
        batches._set(torch.zeros(n, 1), torch.zeros(n).long(), n)
        return batches

    setup = LockSetup(0.0, nn.Identity(), {}, held(10), 0.12, torch.Generator(), num_classes=10)
    se = (0.12 * 0.88 / 5000) ** 0.5
    assert holdout_target(0.0, setup, held(5000)) == pytest.approx(0.12)
    assert holdout_target(1.0, setup, held(5000)) == pytest.approx(0.12 - se)
    assert holdout_target(1.5, setup, None) == 0.12
    # 192 held-out samples: 1.5 standard errors would ask for 8.5 %, below chance (10 %):
    # the floor is half way from chance to the target
    assert holdout_target(1.5, setup, held(192)) == pytest.approx(0.11)
    # a target the owner set below chance is kept as it is
    low = LockSetup(0.0, nn.Identity(), {}, held(10), 0.05, torch.Generator(), num_classes=10)
    assert holdout_target(1.5, low, held(192)) == pytest.approx(0.05)
