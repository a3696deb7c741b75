"""Training-free user marks in the weights, and white-box tracing of a suspect copy.

The owner draws a plan from a secret: ``positions`` scalars of the model's weight tensors
(the same for every user, never one the lock changed) and, per position, an amplitude of
``strength`` times its tensor's standard deviation. User ``u``'s copy adds ``+a_j`` where
bit ``j`` of ``u``'s Tardos codeword (:mod:`advparams.tracing.code`) is 1 and ``-a_j``
where it is 0, rounded to the model's dtype: no training, and the copy follows bit for
bit from the secret, the original weights and the user's id.

White-box tracing reads a suspect's weights: the observation at position ``j`` is
``(w_j - original_j) / a_j`` clipped to ``[-1, 1]`` (+1 or -1 on a user's own copy, the
mean of the colluders' bits on an average of copies, 0 where a position was pruned to
zero), and every user's symmetric Tardos score is compared with a threshold calibrated
for the stated chance of accusing any innocent user.

Positions are drawn as in :mod:`advparams.keys.shuffle`, from SHAKE-256, so a plan is the
same under any future torch or Python version: ``SHAKE-256(b"advparams-mark-v1\\0" +
secret)`` read as little-endian unsigned 64-bit words, each taken modulo the number of
candidate scalars (weight tensors in ``state_dict`` order, flattened), skipping repeats
and excluded positions until ``positions`` are found.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advparams.errors import CheckpointError, ConfigError, UserTableError
from advparams.keys.key import tied_names
from advparams.registry import validated
from advparams.tracing.code import TardosCode, accusation_threshold, scores

__all__ = [
    "MarkConfig",
    "MarkPlan",
    "MarkWriter",
    "TraceResult",
    "mark_copy",
    "mark_plan",
    "observe",
    "trace_observation",
    "trace_weights",
]

_DOMAIN = b"advparams-mark-v1\0"


@dataclass(frozen=True)
@validated
class MarkConfig:
    """Settings of the users' marks.

    Attributes:
        positions: marked scalars, the length of the Tardos code [inferred].
        strength: each mark's size, as a fraction of its tensor's standard deviation
            [inferred]; 0.03 kept every user's copy of LeNet-5 and the VGG-style net within
            0.2 points of the original's accuracy where 0.05 did not (``docs/tracing.md``).
        include: ``fnmatch`` patterns of tensor names that may be marked; empty: every
            weight tensor (``dim >= 2``) of the model.
        exclude: ``fnmatch`` patterns of tensor names never marked.
        colluders: the coalition size the code is built for (Tardos' ``c``).
        false_accusation: the chance of accusing any innocent user that the tracing
            threshold allows, over all users together.
    """

    positions: int = 4096
    strength: float = 0.03
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    colluders: int = 3
    false_accusation: float = 1e-3

    def __post_init__(self) -> None:
        if self.positions < 1:
            raise ConfigError(f"positions must be at least 1, got {self.positions}")
        if not 0.0 < self.strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if self.colluders < 1:
            raise ConfigError(f"colluders must be at least 1, got {self.colluders}")
        if not 0.0 < self.false_accusation < 1.0:
            raise ConfigError(f"false_accusation must be in (0, 1), got {self.false_accusation}")


@dataclass(frozen=True, eq=False)
class MarkPlan:
    """Where the marks go and how large they are.

    Attributes:
        names: the marked tensors' ``state_dict`` names, one per position.
        indices: flat positions within those tensors (int64).
        amplitudes: each mark's size ``a_j`` (float64, in the tensor's units).
        code: the Tardos code whose bits the marks carry.
    """

    names: tuple[str, ...]
    indices: torch.Tensor
    amplitudes: torch.Tensor
    code: TardosCode

    def groups(self) -> dict[str, torch.Tensor]:
        """Code positions by tensor name: which code positions fall in each tensor."""
        out: dict[str, list[int]] = {}
        for j, name in enumerate(self.names):
            out.setdefault(name, []).append(j)
        return {name: torch.tensor(js, dtype=torch.int64) for name, js in out.items()}


def markable_names(state: Mapping[str, torch.Tensor], config: MarkConfig) -> list[str]:
    """The tensors of ``state`` the mark may use: floating weights (``dim >= 2``) that
    ``config.include`` names (all when empty) and ``config.exclude`` does not; a tensor
    tied to one before it (a language model's output layer) only through that one."""
    names = []
    tied = tied_names(state)
    for name, t in state.items():
        if t.dim() < 2 or not t.is_floating_point() or name in tied:
            continue
        if config.include and not any(fnmatch.fnmatchcase(name, p) for p in config.include):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in config.exclude):
            continue
        names.append(name)
    return names


def mark_plan(
    model: nn.Module,
    secret: bytes,
    config: MarkConfig | None = None,
    exclude: Mapping[str, torch.Tensor] | None = None,
    within: Mapping[str, torch.Tensor] | None = None,
) -> MarkPlan:
    """The plan for ``model`` (its original weights) drawn from ``secret``.

    ``exclude`` maps tensor names to flat positions never marked (a lock's changed
    positions); ``within``, when given, maps the only tensors that may be marked to the
    flat positions allowed in each (the values a keyed shuffle moved).
    """
    cfg = config or MarkConfig()
    state = model.state_dict()
    names = [n for n in markable_names(state, cfg) if within is None or n in within]
    allowed = [None if within is None else within[n].reshape(-1).to(torch.int64).cpu() for n in names]
    sizes = [state[n].numel() if a is None else int(a.numel()) for n, a in zip(names, allowed, strict=True)]
    total = sum(sizes)
    skip = {(n, int(i)) for n, idx in (exclude or {}).items() for i in idx.reshape(-1).tolist()}
    if not names:
        raise ConfigError(
            f"the mark's include {list(cfg.include)} and exclude {list(cfg.exclude)} patterns leave no weight "
            "tensor of this model to mark (a roster's mark is set at 'keys users create --set include=...')"
        )
    if total - len(skip) < cfg.positions:
        raise ConfigError(
            f"the mark asks for {cfg.positions} positions but this model has {total - len(skip)} markable weights: "
            f"create a roster with --set positions=N, N at most {total - len(skip)}"
        )
    starts = np.cumsum([0, *sizes])
    chosen: list[tuple[str, int]] = []
    seen: set[int] = set()
    block = 0
    while len(chosen) < cfg.positions:
        want = 2 * (cfg.positions - len(chosen)) + 64
        if block >= 256:
            raise ConfigError(
                f"only {len(chosen)} of {cfg.positions} positions could be marked outside the excluded ones"
            )
        stream = hashlib.shake_256(_DOMAIN + secret + block.to_bytes(8, "little")).digest(8 * want)
        block += 1
        for flat in (np.frombuffer(stream, dtype="<u8") % np.uint64(total)).tolist():
            if flat in seen:
                continue
            seen.add(flat)
            t = int(np.searchsorted(starts, flat, side="right")) - 1
            offset = flat - int(starts[t])
            span = allowed[t]
            index = offset if span is None else int(span[offset])
            if (names[t], index) in skip:
                continue
            chosen.append((names[t], index))
            if len(chosen) == cfg.positions:
                break
    std = {n: float(state[n].detach().double().std()) for n in names}
    return MarkPlan(
        names=tuple(n for n, _ in chosen),
        indices=torch.tensor([i for _, i in chosen], dtype=torch.int64),
        amplitudes=torch.tensor([cfg.strength * std[n] for n, _ in chosen], dtype=torch.float64),
        code=TardosCode(secret, cfg.positions, cfg.colluders),
    )


class MarkWriter:
    """One working copy of ``model`` into which any codeword's marks can be written in
    turn (to evaluate many users' or reference copies without a copy each); ``model`` is
    not changed. :meth:`write` gives exactly :func:`mark_copy`'s weights."""

    def __init__(self, model: nn.Module, plan: MarkPlan) -> None:
        self.model = copy.deepcopy(model)
        self.plan = plan
        state = self.model.state_dict()
        self._slots = []
        for name, js in plan.groups().items():
            t = state[name]
            idx = plan.indices[js]
            base = t.detach().reshape(-1)[idx.to(t.device)].double().cpu()
            self._slots.append((t, js, idx, base))

    def write(self, bits: torch.Tensor) -> nn.Module:
        """Sets the marks of codeword ``bits`` (bool, one per position); returns the model."""
        return self.write_signs(bits.to(torch.float64) * 2.0 - 1.0)

    def write_signs(self, signs: torch.Tensor) -> nn.Module:
        """Sets ``signs[j] * a_j`` at every position (float64; +-1 for a codeword, the
        expected mark ``2 p_j - 1`` for the centre model); returns the model."""
        with torch.no_grad():
            for t, js, idx, base in self._slots:
                moved = (base + signs[js] * self.plan.amplitudes[js]).to(t.dtype).to(t.device)
                if t.is_contiguous():
                    t.view(-1)[idx.to(t.device)] = moved
                else:
                    flat = t.detach().reshape(-1).clone()
                    flat[idx.to(flat.device)] = moved
                    t.copy_(flat.view_as(t))
        return self.model


def mark_copy(model: nn.Module, plan: MarkPlan, user: str) -> nn.Module:
    """User ``user``'s copy of ``model``: a deep copy with ``+-a_j`` added at the plan's
    positions by the user's codeword, rounded to each tensor's dtype (``model`` is not
    changed)."""
    return MarkWriter(model, plan).write(plan.code.codeword(user))


def observe(suspect: nn.Module, original: nn.Module, plan: MarkPlan) -> torch.Tensor:
    """The white-box observation of ``suspect`` at each code position (float64 in [-1, 1];
    0 where the suspect holds an exact zero, as pruning leaves it)."""
    a, b = suspect.state_dict(), original.state_dict()
    y = torch.zeros(len(plan.names), dtype=torch.float64)
    for name, js in plan.groups().items():
        if name not in a or a[name].shape != b[name].shape:
            raise CheckpointError(
                f"the suspect has no tensor {name!r} of the original's shape: not a copy of this model"
            )
        idx = plan.indices[js]
        w = a[name].detach().reshape(-1)[idx.to(a[name].device)].double().cpu()
        w0 = b[name].detach().reshape(-1)[idx.to(b[name].device)].double().cpu()
        obs = ((w - w0) / plan.amplitudes[js]).clamp(-1.0, 1.0)
        y[js] = torch.where(w == 0, torch.zeros_like(obs), obs)
    return y


@dataclass(frozen=True)
class TraceResult:
    """Who a suspect copy names.

    Attributes:
        users: the users scored, in order.
        scores: their Tardos scores.
        threshold: the score above which a user is accused.
        accused: the users whose score passes it, highest first.
        rate: the allowed chance of accusing any innocent user.
        observed: white-box: the size of the observation, ``sqrt(sum y_j**2)`` (0: no
            mark left); black-box: the standard deviation of an innocent user's score.
        queries: black-box: the queries that counted (0: white-box).
    """

    users: tuple[str, ...]
    scores: tuple[float, ...]
    threshold: float
    accused: tuple[str, ...]
    rate: float
    observed: float
    queries: int = 0

    @property
    def top(self) -> str | None:
        """The highest-scoring user, accused or not (None without users)."""
        if not self.users:
            return None
        return self.users[max(range(len(self.users)), key=lambda i: self.scores[i])]


def trace_observation(observed: torch.Tensor, plan: MarkPlan, users: Sequence[str], rate: float) -> TraceResult:
    """Scores ``users`` against an observation and accuses those above the threshold."""
    if not users:
        raise UserTableError("tracing needs at least one user")
    p = plan.code.biases()
    s = scores(observed, plan.code.codewords(users), p)
    tau = accusation_threshold(observed, p, len(users), rate)
    order = sorted(range(len(users)), key=lambda i: -float(s[i]))
    accused = tuple(users[i] for i in order if float(s[i]) > tau)
    return TraceResult(
        users=tuple(users),
        scores=tuple(float(v) for v in s),
        threshold=tau,
        accused=accused,
        rate=rate,
        observed=float(observed.pow(2).sum().sqrt()),
    )


def trace_weights(
    suspect: nn.Module, original: nn.Module, plan: MarkPlan, users: Sequence[str], rate: float = 1e-3
) -> TraceResult:
    """White-box tracing: the users ``suspect``'s weights name (see the module docstring)."""
    return trace_observation(observe(suspect, original, plan), plan, users, rate)
