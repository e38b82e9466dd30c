"""Which implementation runs an env's hot operations: torch ops (any device) or compiled CPU kernels.

The choice is made once, when the env is built, from the device, the dtype and the problem, and stored as the env's
``backend`` (a :class:`Backend`); the env argument ``backend`` forces it (``"torch"`` or ``"compiled"``; ``"auto"``
picks compiled kernels where they exist). Both implementations compute the same quantities; the shared parity suite
(``tests/test_backends.py``) runs every env under both on the same cases.

Where compiled kernels exist (``benchmarks/backends.py`` measures what each one buys):

- pool envs (SelfTrain, ActiveLearn, StreamActiveLearn) with binary labels on the CPU: the Newton fit
  (:mod:`reciprocal_gym.learners.newton_cpu`; about 1.9x the step at pool 400, B = 1 to 1024), the training-set
  gather and, in float64, the predictions with the candidate features (:mod:`reciprocal_gym.envs.pool_kernel`; the
  two passes together 1.17-1.23x the step, each alone 1.02-1.25x);
- the Bandit with Bernoulli arms, the full history, sampled pulls, float32, a shared ``lam``, on the CPU: the whole
  step (``bandit._bandit_step``; 1.4-3.4x);
- SolverRelax in float64 on the CPU: the SOR solves (:mod:`reciprocal_gym.core.sor_kernel`; 60x the batched torch
  sweeps on 400 8 x 8 systems, identical iteration counts).

Everything else runs on torch ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BACKENDS = ("auto", "torch", "compiled")


@dataclass(frozen=True)
class Backend:
    """The implementation of each hot operation of one env."""

    name: str
    """``"compiled"`` if any operation runs compiled, else ``"torch"``."""
    fit: str = "torch"
    """The ERM solver's backend (:func:`reciprocal_gym.learners.fit_ridge_logistic`)."""
    gather: bool = False
    """Pool envs: the training sets gathered by a compiled pass."""
    predict: bool = False
    """Pool envs: predictions, metrics and candidate features by a compiled pass."""
    step: bool = False
    """Bandit: the whole step by a compiled pass."""
    sor: bool = False
    """SolverRelax: the SOR solves compiled, system by system (:mod:`reciprocal_gym.core.sor_kernel`)."""


TORCH = Backend("torch")


def _resolve(requested: str, possible: bool, why_not: str) -> bool:
    if requested not in BACKENDS:
        raise ValueError(f"backend={requested!r} is not allowed; choose one of {BACKENDS}")
    if requested == "compiled" and not possible:
        raise ValueError(f"backend='compiled' is not available here: {why_not}; use backend='auto' or 'torch'")
    return possible and requested != "torch"


SYNC_FREE_REASON = "sync_free=True (the compiled kernels read the tensors on the host)"


def pool_backend(requested: str, device: torch.device, dtype: torch.dtype, n_classes: int,
                 torch_fit: list[str] | tuple[str, ...] = (), sync_free: bool = False) -> Backend:
    """Compiled fits for binary learners on the CPU, compiled predictions too in float64. ``torch_fit`` names the
    settings that need the torch solver (a free intercept, IRLS): the fit then runs in torch and the other kernels
    stay compiled. A sync-free env runs torch ops only."""
    why = [SYNC_FREE_REASON] if sync_free else []
    if device.type != "cpu":
        why.append(f"the env runs on {device}")
    if n_classes != 2:
        why.append(f"the labels have {n_classes} classes (compiled kernels are binary)")
    if not _resolve(requested, not why, " and ".join(why)):
        return TORCH
    return Backend("compiled", fit="torch" if torch_fit else "compiled", gather=True, predict=dtype == torch.float64)


def bandit_backend(requested: str, device: torch.device, dtype: torch.dtype, *, bernoulli: bool, full_history: bool,
                   sampled: bool, shared_lam: bool, sync_free: bool = False) -> Backend:
    """The compiled step for sampled pulls of Bernoulli arms with the full history, float32, a shared lam, CPU (not
    in a sync-free env)."""
    why = [text for ok, text in ((not sync_free, SYNC_FREE_REASON),
                                 (device.type == "cpu", f"the env runs on {device}"),
                                 (dtype == torch.float32, f"dtype is {dtype} (the compiled step is float32)"),
                                 (bernoulli, "the arms are not Bernoulli"),
                                 (full_history, "the history is windowed"),
                                 (sampled, "adaptation is 'expected'"),
                                 (shared_lam, "lam differs between learners")) if not ok]
    if not _resolve(requested, not why, " and ".join(why)):
        return TORCH
    return Backend("compiled", step=True)


def solver_backend(requested: str, device: torch.device, dtype: torch.dtype) -> Backend:
    """Compiled SOR solves for float64 systems on the CPU."""
    why = [text for ok, text in ((device.type == "cpu", f"the env runs on {device}"),
                                 (dtype == torch.float64, f"dtype is {dtype} (the compiled SOR is float64)")) if not ok]
    if not _resolve(requested, not why, " and ".join(why)):
        return TORCH
    return Backend("compiled", sor=True)
