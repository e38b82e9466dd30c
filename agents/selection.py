"""Selection rules over selection criteria, for every environment of the suite.

A criterion maps a batched observation to scores (B, n_choices), higher = more wanted: pool points in the pool
environments, arms in the bandits. A rule turns scores into a choice, honouring ``obs["action_mask"]`` where the
observation has one:

=================  ===========================================  ===========  ======================================
rule               choice                                       randomized   Lipschitz constant of the law in the
                                                                             scores: max norm -> l1 (what bounds
                                                                             W1, with the pool's diameter); l2 -> l2
=================  ===========================================  ===========  ======================================
``greedy``         argmax (top-k)                               no           none (jumps when the argmax switches)
``epsilon``        uniform with prob. epsilon, else argmax      yes          none (same jumps)
``softmax``        sample from softmax(score / tau)             yes          1 / tau; 1 / (2 tau)
``sparsemax``      sample from sparsemax(score / tau)           yes          |S| / tau (S: the support, so it grows
                                                                             with it); 1 / tau
``random``         uniform over allowed points                  yes          0; 0 (a constant law)
=================  ===========================================  ===========  ======================================

Softmax's Jacobian is (diag(p) - p p^T) / tau: in l2 its norm is at most 1 / (2 tau), from the max norm to l1 at
most 1 / tau (the mean absolute deviation of a [-1, 1]-valued variable is at most 1), both attained with two equal
scores. Sparsemax's is the centring on the support divided by tau: 1 / tau in l2 and |S| / tau from max to l1.
The total variation distance between two laws is half their l1 distance.

Softmax selection is the entropy-regularized rule (it maximises E[score] + tau * entropy); sparsemax is the
quadratically regularized one (it maximises E[score] - tau / 2 * |law|^2, the Euclidean projection of score / tau
onto the simplex, which can put zero mass on poor choices). Both are randomized and regularized, as the
reciprocal-learning convergence theorem needs. In an env's ``expected`` mode the agent returns the selection law
itself (``law=True``). Scores of +inf (e.g. the UCB index of an arm never pulled) are taken first: the law is
uniform over them, the limit of every rule.

Criteria: pool envs ``confidence``, ``margin``, ``entropy`` (self-training), ``uncertainty`` (active learning),
computed in float64 from the observation's ``log_probs`` (so probabilities that round to 1 do not tie), and the
look-ahead criteria ``ppp``, ``likelihood``, ``predictive_variance``, ``probability_score``
(:mod:`agents.lookahead`; binary envs); ``low_cost`` (minus the estimated mean cost, solver env), ``none`` (no
preference, for the random rule); bandits ``mean`` (the estimated arm mean) and ``ucb`` (the UCB1 index).

A criterion can be any function ``obs -> scores`` (a tensor (B, n_choices)), or ``(obs, context) -> scores`` where
``context`` is the env's :class:`~reciprocal_gym.SelectionContext` (pool features raw and standardized, dataset row
ids, theta in both units, float64 logits and probabilities, the training and labeled sets); pass it as
``criterion=``. An agent whose criterion takes the context acts with ``agent.act(obs, context=...)`` (or
``agent.act_in(env, obs)``, which fetches it); :attr:`SelectionAgent.needs_context` says which.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from agents.base import Agent
from agents.lookahead import LOOKAHEAD_CRITERIA
from reciprocal_gym.arguments import Choice, Flag, Integer, PerLearner, Real, learner_values
from reciprocal_gym.envs.context import SelectionContext

Criterion = Callable[[dict[str, Tensor]], Tensor]
ContextCriterion = Callable[[dict[str, Tensor], SelectionContext], Tensor]


def takes_context(criterion: Callable[..., Tensor]) -> bool:
    """Whether a criterion is ``(obs, context) -> scores`` (two positional parameters, or one named ``context``)
    rather than ``obs -> scores``."""
    try:
        signature = inspect.signature(criterion)
    except (TypeError, ValueError):
        return False
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return len(positional) >= 2 or "context" in signature.parameters


def _log_probs(obs: dict[str, Tensor]) -> Tensor:
    """(B, N, C) float64 log predicted probabilities: the observation's ``log_probs`` (from the logits), or for an
    observation without them the float32 ``candidates`` probabilities."""
    if "log_probs" in obs:
        return obs["log_probs"].to(torch.float64)
    n_classes = obs["candidates"].shape[-1] - 3
    return obs["candidates"][..., :n_classes].to(torch.float64).log()


def confidence(obs: dict[str, Tensor]) -> Tensor:
    """Highest predicted class probability, as its log (self-training picks confident points). From the logits
    in float64: points whose probabilities round to 1 still rank by their logits."""
    return _log_probs(obs).max(-1).values


def margin(obs: dict[str, Tensor]) -> Tensor:
    """Top-1 minus top-2 probability (large = confident). Binary: ranked by the log-odds |log p1 - log p0|, which
    orders points as the probability margin does and does not saturate; multinomial: the difference in float64."""
    log_p = _log_probs(obs)
    if log_p.shape[-1] == 2:
        return (log_p[..., 1] - log_p[..., 0]).abs()
    top2 = log_p.topk(2, dim=-1).values.exp()
    return top2[..., 0] - top2[..., 1]


def _entropy(obs: dict[str, Tensor]) -> Tensor:
    log_p = _log_probs(obs)
    return -(log_p.exp() * torch.where(torch.isfinite(log_p), log_p, 0.0)).sum(-1)


def entropy(obs: dict[str, Tensor]) -> Tensor:
    """Negative predictive entropy in nats (large = confident), float64 from the log probabilities."""
    return -_entropy(obs)


def uncertainty(obs: dict[str, Tensor]) -> Tensor:
    """Predictive entropy in nats (large = uncertain; uncertainty sampling), float64."""
    return _entropy(obs)


def mean(obs: dict[str, Tensor]) -> Tensor:
    """Estimated arm mean (bandits: ``obs["theta"]``)."""
    return obs["theta"]


def ucb(obs: dict[str, Tensor]) -> Tensor:
    """UCB1 index ``theta_k + sqrt(2 log t / n_k)``, +inf for an arm not in the history (bandits)."""
    t = obs["step"].clamp_min(1.0)
    n = obs["counts"]
    bonus = torch.sqrt(2.0 * torch.log(t) / n.clamp_min(1e-12))
    return torch.where(n > 0, obs["theta"] + bonus, torch.inf)


def low_cost(obs: dict[str, Tensor]) -> Tensor:
    """Minus the estimated mean (for costs, e.g. SOR sweeps in the solver env: lower is better)."""
    return -obs["theta"]


def no_preference(obs: dict[str, Tensor]) -> Tensor:
    """All choices score 0 (the random agent's criterion); the width comes from the mask or the arm counts."""
    like = obs["action_mask"] if "action_mask" in obs else obs["counts"]
    return torch.zeros(like.shape, dtype=torch.float64, device=like.device)


CRITERIA: dict[str, Criterion | ContextCriterion] = {
    "confidence": confidence,
    "margin": margin,
    "entropy": entropy,
    "uncertainty": uncertainty,
    "mean": mean,
    "ucb": ucb,
    "low_cost": low_cost,
    "none": no_preference,
    **LOOKAHEAD_CRITERIA,
}
RULES = ("greedy", "epsilon", "softmax", "sparsemax", "random")


def sparsemax(z: Tensor, mask: Tensor) -> Tensor:
    """Euclidean projection of each row of z onto the simplex over the entries where ``mask`` is True."""
    filled = torch.where(mask, z, -torch.inf)
    ordered = filled.sort(dim=-1, descending=True).values
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    finite = torch.isfinite(ordered)
    cumulative = torch.where(finite, ordered, 0.0).cumsum(-1)
    support = finite & (1.0 + k * ordered > cumulative)
    size = support.sum(-1, keepdim=True).clamp_min(1)
    threshold = (cumulative.gather(-1, size - 1) - 1.0) / size.to(z.dtype)
    return torch.where(mask, (z - threshold).clamp_min(0.0), 0.0)


def _mask(obs: dict[str, Tensor], scores: Tensor) -> Tensor:
    if "action_mask" in obs:
        return obs["action_mask"].bool()
    return torch.ones_like(scores, dtype=torch.bool)


class SelectionAgent(Agent):
    """Select pool points by a rule applied to a criterion.

    Args:
        criterion: a name in :data:`CRITERIA` or a function ``obs -> scores (B, n_pool)`` or
            ``(obs, context) -> scores``.
        rule: one of :data:`RULES`.
        tau: temperature (> 0) of the rules ``softmax`` and ``sparsemax``: a number, or one per learner (a 1-D
            sequence of B numbers; the batch must then have B learners), e.g. for a sweep run as one batch.
        epsilon: exploration probability in [0, 1], rule ``epsilon``.
        k: points per step; must match the env's ``k`` (k > 1 gives (B, k) distinct indices).
        law: return the selection law (B, n_pool), float64, instead of indices, for ``adaptation="expected"``. The
            greedy law with ``k > 1`` is uniform over the top k (the env's mass k then gives each of them weight 1);
            epsilon-greedy's mixes it with the uniform law.
        seed: seed of the agent's generator.
    """

    ARGUMENTS = {
        "rule": Choice(RULES),
        # below 1e-8 softmax is argmax to rounding for any scores the criteria give; above 1e8 it is uniform
        "tau": PerLearner(1e-8, 1e8),
        "epsilon": Real(0.0, 1.0),
        "k": Integer(1),
        "law": Flag(),
    }
    """What each argument allows (and ``criterion``: a name in :data:`CRITERIA` or a callable; ``seed``)."""

    def __init__(
        self,
        criterion: str | Criterion = "confidence",
        rule: str = "softmax",
        tau: float = 0.1,
        epsilon: float = 0.1,
        k: int = 1,
        law: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(criterion, str) or not callable(criterion):
            if not isinstance(criterion, str) or criterion not in CRITERIA:
                raise ValueError(
                    f"criterion={criterion!r} is not known; choose one of {tuple(CRITERIA)} or pass a function"
                )
            criterion = CRITERIA[criterion]
        if not callable(criterion):
            raise ValueError("criterion must be a name or a function obs -> scores")
        values = {"rule": rule, "tau": tau, "epsilon": epsilon, "k": k, "law": law}
        for name, spec in self.ARGUMENTS.items():
            spec.check(name, values[name])
        if not isinstance(tau, (int, float)):  # one per learner: a float64 array (checked against B when used)
            tau = np.asarray(learner_values("tau", tau, len(tau)), dtype=np.float64)
        self.criterion, self.rule, self.tau, self.epsilon, self.k, self.law = criterion, rule, tau, epsilon, k, law
        self.needs_context = takes_context(criterion)
        super().__init__(seed)

    def scores(self, obs: dict[str, Tensor], context: SelectionContext | None = None) -> Tensor:
        """The criterion's scores (B, n_choices) for a batched observation (and the context, if it takes one)."""
        if not self.needs_context:
            return self.criterion(obs)
        if context is None:
            name = getattr(self.criterion, "__name__", "criterion")
            raise ValueError(f"the criterion {name!r} takes the selection context: call agent.act(obs, "
                             "context=reciprocal_gym.selection_context(env)) or agent.act_in(env, obs)")
        return self.criterion(obs, context)

    @property
    def conditions(self) -> dict[str, object]:
        """Which conditions of the reciprocal-learning convergence theorem this selection satisfies, with the
        selection law's Lipschitz constants in the scores, each with its norms: ``lipschitz_max_to_l1`` (scores in
        max norm to the law in l1, what bounds the Wasserstein-1 step together with the pool's diameter; None for
        sparsemax, whose constant is the support size over tau, and for the rules that jump) and ``lipschitz_l2``
        (l2 to l2)."""
        tau = self.tau if isinstance(self.tau, float | int) else float(np.min(self.tau))  # the worst learner's
        constants = {
            "softmax": (f"yes: {1 / tau:.3g} (1 / tau) from scores in max norm to the law in l1 (total variation: "
                        f"half of it), {1 / (2 * tau):.3g} (1 / (2 tau)) in l2", 1 / tau, 1 / (2 * tau)),
            "sparsemax": (f"yes: |S| / tau from scores in max norm to the law in l1 (S the support: it grows with "
                          f"the support), {1 / tau:.3g} (1 / tau) in l2", None, 1 / tau),
            "random": ("yes: 0 (a constant law)", 0.0, 0.0),
        }
        text, max_to_l1, l2 = constants.get(self.rule, ("no", None, None))
        return {"randomized": self.rule != "greedy", "regularized": self.rule in ("softmax", "sparsemax"),
                "lipschitz": text, "lipschitz_max_to_l1": max_to_l1, "lipschitz_l2": l2}

    def selection_law(self, obs: dict[str, Tensor], context: SelectionContext | None = None) -> Tensor:
        """(B, n_choices) probability of selecting each choice (for one draw)."""
        scores = self.scores(obs, context).to(torch.float64)
        return self.law_from_scores(scores, _mask(obs, scores))

    def law_from_scores(self, scores: Tensor, mask: Tensor, tau: Tensor | float | None = None) -> Tensor:
        """The rule's law for given scores (B, n) and mask; ``tau`` may be a per-learner (B, 1) tensor."""
        tau = self._tau(scores) if tau is None else tau
        scores = scores.to(torch.float64)
        if bool((mask & torch.isnan(scores)).any()):
            raise ValueError("the criterion gave NaN scores for selectable points; a criterion must return real "
                             "scores (+inf / -inf allowed)")
        first = mask & torch.isposinf(scores)
        if bool(first.any()):  # +inf scores come first: uniform over them (the limit of every rule)
            has = first.any(-1, keepdim=True)
            scores = torch.where(first, 1.0, torch.where(has, -torch.inf, scores))
            mask = torch.where(has, first, mask)
        if self.rule == "random":
            law = mask.to(torch.float64)
        elif self.rule == "softmax":  # scores shifted by their maximum first: no inf / inf for a small tau
            top = torch.where(mask, scores, -torch.inf).amax(-1, keepdim=True)
            law = torch.softmax(torch.where(mask, (scores - top) / tau, -torch.inf), dim=-1)
        elif self.rule == "sparsemax":
            top = torch.where(mask, scores, -torch.inf).amax(-1, keepdim=True)
            law = sparsemax(torch.where(mask, scores - top, 0.0) / tau, mask)
        else:  # greedy: uniform over the top k allowed
            ranked = torch.where(mask, scores, -torch.inf)
            top = min(self.k, scores.shape[-1])
            best = ranked.argmax(-1, keepdim=True) if top == 1 else \
                ranked.cpu().topk(top, dim=-1, sorted=True).indices.to(scores.device)
            law = torch.zeros_like(scores).scatter_(1, best, 1.0) * mask  # fewer than k allowed: those only
            law = law / law.sum(-1, keepdim=True)
            if self.rule == "epsilon":
                uniform = mask.to(torch.float64)
                law = (1 - self.epsilon) * law + self.epsilon * uniform / uniform.sum(-1, keepdim=True)
        return law / law.sum(-1, keepdim=True)

    def _tau(self, scores: Tensor) -> float | Tensor:
        """The temperature: the shared float, or the per-learner values as a (B, 1) tensor."""
        if isinstance(self.tau, float | int):
            return self.tau
        if len(self.tau) != scores.shape[0]:
            raise ValueError(f"tau has {len(self.tau)} entries (one per learner) but the batch has {scores.shape[0]} "
                             "learners")
        return torch.as_tensor(self.tau, dtype=torch.float64, device=scores.device).unsqueeze(1)

    def act(self, obs: dict[str, Tensor], context: SelectionContext | None = None) -> Tensor:
        scores = self.scores(obs, context)
        return self.act_on_scores(scores, _mask(obs, scores))

    def act_on_scores(self, scores: Tensor, mask: Tensor, tau: Tensor | float | None = None) -> Tensor:
        """Choices (or the law, with ``law=True``) for given scores (B, n) and mask (B, n)."""
        if self.rule == "greedy" and not self.law:  # the best allowed score; no law needed
            ranked = torch.where(mask, scores.to(torch.float64), -torch.inf)
            if self.k == 1:
                return ranked.argmax(-1)  # ties: the first (lowest) index
            return ranked.cpu().topk(self.k, dim=-1).indices.to(scores.device)
        law = self.law_from_scores(scores, mask, tau)
        if self.law:
            return law  # float64: the env casts it to its dtype (the law feeds fixed-point checks)
        device = law.device
        law, mask = law.cpu(), mask.cpu()
        if self.rule in ("greedy", "epsilon"):
            ranked = torch.where(mask, scores.to(torch.float64).cpu(), -torch.inf)
            chosen = ranked.topk(self.k, dim=-1).indices
            if self.rule == "epsilon":
                explore = torch.rand(law.shape[0], generator=self.generator) < self.epsilon
                uniform = torch.multinomial(mask.to(torch.float64), self.k, replacement=False,
                                            generator=self.generator)
                chosen = torch.where(explore.unsqueeze(1), uniform, chosen)
        else:
            if self.k > 1:  # draws beyond a sparse law's support are uniform over the other allowed points
                law = law + 1e-12 * mask
            chosen = torch.multinomial(law, self.k, replacement=False, generator=self.generator)
        chosen = chosen.to(device)
        return chosen.squeeze(1) if self.k == 1 else chosen
