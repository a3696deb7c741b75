"""Black-box tracing: secret queries whose labels the users' marks decide, and tracing
from a suspect's answers alone (``docs/tracing.md``) [ours].

**Making the queries.** The *centre* model is the original with every mark at its
expected value, ``a_j (2 p_j - 1)``. A query is a point where the centre model's label
changes: bisection on the segment between two of the owner's images that it labels
differently. Each user's mark moves the boundary a little, so each user's copy answers
one side or the other, about half of them each way.

**Reading the marks back.** At query ``q`` let ``c1``, ``c2`` be the centre model's two
top classes and ``m_q`` the margin ``logit_c1 - logit_c2``; to first order a copy with mark
signs ``s`` has margin ``sum_j G_qj (s_j - (2 p_j - 1))``, with ``G_qj`` the gradient of
``m_q`` with respect to mark ``j``'s weight at the centre, times ``a_j``. The suspect's
answer gives the sign of its margin: ``b_q = +1`` for ``c1``, ``-1`` for ``c2``, 0 for any
other class. The observation is the ridge estimate of the marks from those signs,
``y = D G' (G D G' + lambda mean(diag(G D G')) I)^-1 b``, ``D = diag(4 p (1 - p))`` the
marks' prior variance, ``lambda`` the ``shrinkage``, scaled so that ``max |y_j| = 1``.

**Accusing.** ``y`` is an observation like the white-box one: the symmetric Tardos scores
and the same Chernoff threshold (:func:`advparams.tracing.code.accusation_threshold`)
apply. ``y`` depends only on the suspect's answers and on what the owner derives from the
biases, never on an innocent user's codeword, so the bound on accusing any innocent user
holds exactly as for white-box tracing, however wrong the linearisation is; the
linearisation only decides how often the guilty are found.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from advparams.devices import model_device, model_float_dtype
from advparams.errors import ConfigError, DataError, QueryFileError, UserTableError
from advparams.keys.key import tied_names
from advparams.metrics.accuracy import logits_of, model_input, select_logits
from advparams.registry import validated
from advparams.tracing.mark import MarkPlan, MarkWriter, TraceResult, trace_observation

__all__ = ["QueryConfig", "QueryTracer", "answer_queries", "make_queries", "margins_of", "query_code_id"]


@dataclass(frozen=True)
@validated
class QueryConfig:
    """Settings of the black-box queries [inferred; ours].

    Attributes:
        queries: secret queries made (tracing may use the first few only).
        shrinkage: ``lambda`` of the ridge estimate, a share of the mean of the diagonal.
        steps: bisection steps per query.
        batch_size: inputs per forward pass.
    """

    queries: int = 4096
    shrinkage: float = 0.3
    steps: int = 30
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if not 1 <= self.queries <= 100_000:
            raise ConfigError(f"queries must be in [1, 100000], got {self.queries}")
        if not 0.0 < self.shrinkage <= 100.0:
            raise ConfigError(f"shrinkage must be in (0, 100], got {self.shrinkage}")
        if not 1 <= self.steps <= 60:
            raise ConfigError(f"steps must be in [1, 60], got {self.steps}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")


def query_code_id(plan: MarkPlan) -> str:
    """A public name of the plan's code (a hash; reveals nothing of its secret): a query
    file records it, so queries are never used with another roster's code."""
    h = hashlib.sha256(b"advparams-trace-queries-code-v1\0" + plan.code.secret)
    h.update(f"{plan.code.length}:{plan.code.colluders}".encode())
    return "sha256:" + h.hexdigest()


@torch.no_grad()
def answer_queries(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int = 1024
) -> torch.Tensor:
    """The labels ``model`` gives ``inputs`` (int64): what a black-box suspect answers.
    ``model`` may be any module (its output read as every verb reads it: a tensor, or
    the scores in a tuple, dict or Hugging Face output; see ``--model-output``) or any
    callable from a batch to scores or to labels."""
    out = []
    if isinstance(model, nn.Module):
        model.eval()
        device, dtype = model_device(model), model_float_dtype(model)
    else:
        device, dtype = torch.device("cpu"), inputs.dtype
    for start in range(0, len(inputs), batch_size):
        x = inputs[start : start + batch_size]
        y = logits_of(model, model_input(x, device, dtype)) if isinstance(model, nn.Module) else _answers_of(model(x))
        out.append((y.argmax(1) if y.dim() == 2 else y).to(torch.int64).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def check_limit(limit: int | None, available: int) -> int:
    """How many queries count: all ``available`` (``limit`` None), or ``limit``, which
    must be in [1, available] (refused, never adjusted)."""
    if limit is None:
        return available
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= available:
        raise ConfigError(
            f"the query limit must be an integer in [1, {available}] (the queries there are), got {limit}"
        )
    return limit


def check_fits(model: nn.Module, inputs: torch.Tensor) -> None:
    """Refuses queries that ``model`` cannot take, from one of them (one forward pass of a
    single input, before any real work).

    Raises:
        QueryFileError: the queries' shape does not fit the model.
    """
    if len(inputs) == 0:
        raise QueryFileError("the query file holds no queries")
    x = model_input(inputs[:1], model_device(model), model_float_dtype(model))
    try:
        with torch.no_grad():
            logits_of(model, x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise QueryFileError(
            f"the queries are {tuple(inputs.shape[1:])} inputs, which this model cannot take ({str(exc)[:120]})"
        ) from None


def _answers_of(raw: object) -> torch.Tensor:
    """A callable's answers as a tensor of scores or labels: a tensor or plain numbers as
    they are; the scores inside a dict, an output object or a tuple of tensors as a
    module's output is read (:func:`~advparams.metrics.accuracy.select_logits`)."""
    if isinstance(raw, (list, tuple)) and not (raw and isinstance(raw[0], torch.Tensor)):
        return torch.as_tensor(raw)
    y = select_logits(raw)
    if isinstance(y, torch.Tensor):
        return y
    try:
        return torch.as_tensor(y)  # a NumPy array, say
    except (TypeError, ValueError, RuntimeError):
        raise QueryFileError(f"the answering callable returned {type(raw).__name__}, not scores or labels") from None


def _bisect(model: nn.Module, a: torch.Tensor, b: torch.Tensor, steps: int, batch_size: int) -> torch.Tensor:
    """Points between ``a`` and ``b`` (rows) where ``model``'s label leaves ``a``'s."""
    label_a = answer_queries(model, a, batch_size)
    lo = torch.zeros(len(a), dtype=torch.float64)
    hi = torch.ones(len(a), dtype=torch.float64)
    shape = (-1,) + (1,) * (a.dim() - 1)
    for _ in range(steps):
        mid = (lo + hi) / 2
        x = a + (b - a) * mid.view(shape).to(a.dtype)
        same = answer_queries(model, x, batch_size) == label_a
        lo = torch.where(same, mid, lo)
        hi = torch.where(same, hi, mid)
    mid = (lo + hi) / 2
    return a + (b - a) * mid.view(shape).to(a.dtype)


def make_queries(
    original: nn.Module,
    plan: MarkPlan,
    pool: torch.Tensor,
    config: QueryConfig | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The secret queries for ``plan`` (float32): boundary points of the centre model
    between images of ``pool`` (see the module docstring). ``original`` is not changed.

    Raises:
        DataError: the centre model labels all of ``pool`` alike.
    """
    cfg = config or QueryConfig()
    p = plan.code.biases()
    centre = MarkWriter(original, plan).write_signs(2.0 * p - 1.0)
    labels = answer_queries(centre, pool, cfg.batch_size)
    if int(labels.unique().numel()) < 2:
        raise DataError("the model gives every image of the query pool the same label: there is no boundary to query")
    g = generator or torch.Generator().manual_seed(0)
    first = torch.empty(0, dtype=torch.int64)
    second = torch.empty(0, dtype=torch.int64)
    while len(first) < cfg.queries:
        a = torch.randint(len(pool), (4 * cfg.queries,), generator=g)
        b = torch.randint(len(pool), (4 * cfg.queries,), generator=g)
        keep = labels[a] != labels[b]
        first, second = torch.cat([first, a[keep]]), torch.cat([second, b[keep]])
    first, second = first[: cfg.queries], second[: cfg.queries]
    return _bisect(centre, pool[first], pool[second], cfg.steps, cfg.batch_size).float().contiguous()


class QueryTracer:
    """Traces suspects from their answers to ``queries`` (see the module docstring): the
    centre model's classes and gradients at every query are computed once, here."""

    def __init__(
        self,
        original: nn.Module,
        plan: MarkPlan,
        queries: torch.Tensor,
        users: Sequence[str],
        config: QueryConfig | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if not users:
            raise UserTableError("tracing needs at least one user")
        self.config = config or QueryConfig()
        self.users = tuple(users)
        self.queries = queries
        self.plan = plan
        p = plan.code.biases()
        centre = MarkWriter(original, plan).write_signs(2.0 * p - 1.0).eval()
        self.classes, self.gradients = _margin_gradients(centre, plan, queries, self.config.batch_size, progress)
        self.margins: torch.Tensor | None = margins_of(centre, queries, self.classes, self.config.batch_size)
        self._factors: dict[int, torch.Tensor] = {}

    def state(self) -> dict[str, torch.Tensor]:
        """What :meth:`from_state` needs (tensors, to save in a file)."""
        out = {"queries": self.queries, "classes": self.classes, "gradients": self.gradients}
        return out if self.margins is None else {**out, "margins": self.margins}

    @classmethod
    def from_state(
        cls, state: dict[str, torch.Tensor], plan: MarkPlan, users: Sequence[str], config: QueryConfig | None = None
    ) -> QueryTracer:
        """A tracer from :meth:`state` (computed before, for the same plan)."""
        q, c, g = state["queries"], state["classes"], state["gradients"]
        if c.shape != (len(q), 2) or g.shape != (len(q), plan.code.length):
            raise ValueError("the saved tracer does not fit the queries and the plan")
        out = cls.__new__(cls)
        out.config = config or QueryConfig()
        out.users, out.queries, out.plan = tuple(users), q, plan
        out.classes, out.gradients = c.to(torch.int64), g.double()
        out.margins = state["margins"].double() if "margins" in state else None
        out._factors = {}
        return out

    def observation(self, answers: torch.Tensor, limit: int | None = None) -> torch.Tensor:
        """The black-box observation ``y`` from the answers to the first ``limit`` queries."""
        if answers.shape != (len(self.queries),):
            raise QueryFileError(
                f"expected {len(self.queries)} answers, one per query, got shape {tuple(answers.shape)}"
            )
        n = check_limit(limit, len(self.queries))
        a = answers[:n].to(torch.int64)
        c = self.classes[:n]
        b = torch.where(a == c[:, 0], 1.0, torch.where(a == c[:, 1], -1.0, 0.0)).to(torch.float64)
        return self.estimate(b, n)

    def observation_from_margins(self, margins: torch.Tensor, limit: int | None = None) -> torch.Tensor:
        """The observation from the suspect's margins between the centre's two top classes
        (a language model's: the two tokens' log-probabilities), less the centre's own: to
        first order ``G (s - (2p - 1))`` itself, in place of the signs in the ridge estimate."""
        if self.margins is None:
            raise QueryFileError("these queries were saved without the centre model's margins")
        if margins.shape != (len(self.queries),):
            raise QueryFileError(f"expected {len(self.queries)} margins, one per query, got {tuple(margins.shape)}")
        n = check_limit(limit, len(self.queries))
        return self.estimate(margins[:n].double() - self.margins[:n], n)

    def estimate(self, b: torch.Tensor, n: int) -> torch.Tensor:
        """The ridge estimate of the marks from ``b``, one value per the first ``n`` queries."""
        d = self._prior()
        g = self.gradients[:n]
        y = d * (g.T @ torch.cholesky_solve(b[:, None], self._factor(n))[:, 0])
        peak = float(y.abs().max())
        return y / peak if peak > 0 else y

    def trace(self, answers: torch.Tensor, rate: float, limit: int | None = None) -> TraceResult:
        """Who ``answers`` (one label per query) name; only the first ``limit`` queries
        count when given."""
        y = self.observation(answers, limit)
        result = trace_observation(y, self.plan, self.users, rate)
        return dataclasses.replace(result, queries=check_limit(limit, len(self.queries)))

    def _prior(self) -> torch.Tensor:
        p = self.plan.code.biases()
        return 4.0 * p * (1.0 - p)

    def _factor(self, n: int) -> torch.Tensor:
        if n not in self._factors:
            g = self.gradients[:n]
            k = (g * self._prior()) @ g.T
            ridge = self.config.shrinkage * max(float(k.diagonal().mean()), 1e-300)
            self._factors[n] = torch.linalg.cholesky(k + ridge * torch.eye(n, dtype=k.dtype))
        return self._factors[n]


@torch.no_grad()
def margins_of(model: nn.Module, queries: torch.Tensor, classes: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``model``'s margin ``score_c1 - score_c2`` at each query between the two classes
    ``classes`` names (float64): what a suspect that returns scores gives away."""
    device, dtype = model_device(model), model_float_dtype(model)
    out = []
    for start in range(0, len(queries), batch_size):
        scores = logits_of(model, model_input(queries[start : start + batch_size], device, dtype)).double().cpu()
        c = classes[start : start + batch_size]
        out.append(scores.gather(1, c[:, :1]).squeeze(1) - scores.gather(1, c[:, 1:2]).squeeze(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _margin_gradients(
    centre: nn.Module,
    plan: MarkPlan,
    queries: torch.Tensor,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre model's two top classes at each query, and ``G`` (float64, one row per
    query, one column per code position; see the module docstring). ``progress`` is
    called with the number of queries done so far (from 0 again if the loop takes over)."""
    report = progress or (lambda done: None)
    device = next((p.device for p in centre.parameters()), torch.device("cpu"))
    with torch.no_grad():
        logits = torch.cat([logits_of(centre, queries[i : i + batch_size].to(device)).float().cpu()
                            for i in range(0, len(queries), batch_size)])  # fmt: skip
    classes = logits.topk(2, dim=1).indices
    groups = plan.groups()
    out = torch.zeros(len(queries), plan.code.length, dtype=torch.float64)
    try:
        per_sample = _per_sample_gradients(centre, groups, queries, classes, device, min(batch_size, 64), report)
    except (RuntimeError, NotImplementedError):
        # torch.func cannot map every model (data-dependent control flow, ``.item()``,
        # in-place updates of buffers raise RuntimeError; an op without a batching rule,
        # NotImplementedError; running out of memory is a RuntimeError too): one backward
        # pass per query gives the same gradients.
        report(0)
        per_sample = _looped_gradients(centre, groups, queries, classes, device, report)
    for start, grads in per_sample:
        for name, js in groups.items():
            rows = grads[name].reshape(len(grads[name]), -1)[:, plan.indices[js].to(grads[name].device)]
            out[start : start + len(rows), js] = rows.double().cpu() * plan.amplitudes[js]
    return classes.to(torch.int64), out


def _per_sample_gradients(
    model: nn.Module,
    groups: dict[str, torch.Tensor],
    queries: torch.Tensor,
    classes: torch.Tensor,
    device: torch.device,
    batch: int,
    report: Callable[[int], None],
) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """Gradients of each query's margin with respect to the marked tensors (torch.func)."""
    from torch.func import functional_call, grad, vmap

    full = model.state_dict(keep_vars=True)
    tied = tied_names(full)  # a tied tensor is passed once, under its first name
    state = {k: v.detach() for k, v in full.items() if k not in tied}
    marked = {k: state[k] for k in groups}

    def margin(sub: dict[str, torch.Tensor], x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (select_logits(functional_call(model, {**state, **sub}, (x[None],)))[0] * w).sum()

    per_query = vmap(grad(margin), in_dims=(None, 0, 0))
    out = []
    n_classes = int(classes.max()) + 1
    for start in range(0, len(queries), batch):
        c = classes[start : start + batch]
        w = torch.zeros(len(c), max(n_classes, 2))
        w[torch.arange(len(c)), c[:, 0]] = 1.0
        w[torch.arange(len(c)), c[:, 1]] = -1.0
        x = queries[start : start + batch].to(device)
        width = logits_of(model, x[:1]).shape[1]
        w = torch.nn.functional.pad(w, (0, width - w.shape[1]))[:, :width].to(device)
        out.append((start, {k: v.detach() for k, v in per_query(marked, x, w).items()}))
        report(start + len(c))
    return out


def _looped_gradients(
    model: nn.Module,
    groups: dict[str, torch.Tensor],
    queries: torch.Tensor,
    classes: torch.Tensor,
    device: torch.device,
    report: Callable[[int], None],
) -> list[tuple[int, dict[str, torch.Tensor]]]:
    params = dict(model.named_parameters())
    out = []
    for q in range(len(queries)):
        model.zero_grad(set_to_none=True)
        scores = logits_of(model, queries[q : q + 1].to(device))
        (scores[0, classes[q, 0]] - scores[0, classes[q, 1]]).backward()
        grads = {}
        for name in groups:
            g = params[name].grad
            grads[name] = (torch.zeros_like(params[name]) if g is None else g.detach().clone())[None]
        out.append((q, grads))
        report(q + 1)
    model.zero_grad(set_to_none=True)
    return out
