"""Running a suite: one batched env per (task, agent) unit, all seeds at once, written to the store unit by unit."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

import reciprocal_gym  # noqa: F401  (registers the envs)
from reciprocal_gym.arguments import check_seed
from reciprocal_gym.envs.base import resolve_device
from reciprocal_gym.envs.scoring import scoring_of
from reciprocal_gym.leaderboard.store import Store
from reciprocal_gym.leaderboard.suite import SuiteError, build_agent
from reciprocal_gym.wrappers import VERDICTS, ConvergenceDiagnostics

WAIT_S = 2.0  # polling interval while another process runs a unit of the same run


def units(suite: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """The (task, agent) units of a suite, the random agent first in each task."""
    out = []
    for task in suite["tasks"]:
        names = ["random"] + [a for a in task["agents"] if a != "random"]
        out += [(task, name) for name in names]
    return out


def _make(task: dict[str, Any], seeds: int, device: str) -> Any:
    env = gym.make_vec(task["env"], num_envs=seeds, vectorization_mode="vector_entry_point", device=device,
                       autoreset_mode="disabled", **dict(task.get("kwargs", {}), max_steps=task["steps"] + 1))
    try:
        env.unwrapped.training_measure(with_features=False)
        distance = "exact"
    except NotImplementedError:
        distance = "theta"
    return ConvergenceDiagnostics(env, distance=distance)


def run_unit(task: dict[str, Any], agent_spec: dict[str, Any], seeds: int, seed_offset: int,
             device: str = "cpu") -> list[dict[str, Any]]:
    """Run one agent on one task for learners seeded ``seed_offset + i``; one result row per seed."""
    env = _make(task, seeds, device)
    agent = build_agent(agent_spec, seed_offset, env)
    obs, _ = env.reset(seed=seed_offset)
    base = env.unwrapped
    scoring = scoring_of(task["env"])
    metric = task.get("metric", scoring.metrics[0])
    reference = base.score_reference(metric) if scoring.reference == "env" else np.zeros(seeds)
    curve, reference_curve = [], []
    for _ in range(task["steps"]):
        obs, _, terminated, truncated, info = env.step(agent.act_in(env, obs))
        for keys, out in ((metric, curve), (scoring.reference_metric, reference_curve)):
            if keys is None:
                continue
            value = info[keys].cpu().numpy().astype(np.float64)
            out.append((out[-1] if out and scoring.accumulate else 0.0) + value)
        if bool((terminated | truncated).any()):
            break  # an episode ended (e.g. the label budget): the curve stops here for every learner
    values = np.stack(curve, 1)  # (seeds, steps)
    sign = 1.0 if scoring.higher_is_better else -1.0  # regret or cost: higher is worse, the metrics negate it
    final, auc = sign * values[:, -1], sign * values.mean(1)
    if scoring.reference_metric is not None:
        reference = sign * reference_curve[-1]
    verdicts = [VERDICTS[v] for v in info["verdict"].tolist()]
    return [{"seed": seed_offset + i, "final": float(final[i]), "auc": float(auc[i]),
             "reference": float(reference[i]), "verdict": verdicts[i], "curve": values[i].tolist()}
            for i in range(seeds)]


def preflight(suite: dict[str, Any], device: str = "cpu", seed_offset: int = 0) -> None:
    """Build every task's env (two learners) and take one step with every agent listed for it, before the first
    unit runs (``run_suite`` does this unless ``check=False``): what the static checks cannot see (an agent that
    does not fit the env's observation, a dataset that cannot be split as asked) is reported, all at once, as a
    :class:`SuiteError`."""
    resolve_device(device)
    check_seed(seed_offset, suite["seeds"], name="seed_offset")
    problems = []
    for task in suite["tasks"]:
        try:
            env = _make(task, 2, device)
            obs, _ = env.reset(seed=seed_offset)
        except Exception as exc:  # noqa: BLE001 (any failure is reported as a problem of the suite)
            problems.append(f"task {task['name']!r}: its env cannot be built: {type(exc).__name__}: {exc}")
            continue
        for name in dict.fromkeys(["random", *task["agents"]]):
            try:
                agent = build_agent(suite["agents"][name], seed_offset, env)
                env.step(agent.act_in(env, obs))
                env.reset(seed=seed_offset)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"task {task['name']!r} / agent {name!r}: one step failed: "
                                f"{type(exc).__name__}: {exc}")
        env.close()
    if problems:
        raise SuiteError(repr(suite["name"]), problems)


def _ray_unit(task: dict[str, Any], spec: dict[str, Any], seeds: int, seed_offset: int,
              device: str) -> list[dict[str, Any]]:
    """A unit on a Ray worker: one torch thread per worker (Ray runs one worker per CPU)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return run_unit(task, spec, seeds, seed_offset, device)


def run_suite(suite: dict[str, Any], store: Store, resume: bool = False, device: str = "cpu",
              seed_offset: int = 0, progress: bool | None = None, backend: str = "local",
              address: str | None = None, check: bool = True) -> int:
    """Run every missing unit of ``suite`` into ``store``; returns the run id.

    ``backend="ray"`` sends the (task, agent) units to Ray workers (``ray.init(address)``: a local instance by
    default, or an existing cluster); results are written to the same store as they arrive."""
    if backend not in ("local", "ray"):
        raise ValueError(f"backend={backend!r} is not allowed; choose 'local' or 'ray'")
    if check:
        preflight(suite, device, seed_offset)
    settings = {"device": device, "seed_offset": seed_offset}
    run_id = store.start_run(suite, settings, resume)
    done = store.done_units(run_id)
    todo = [(task, name) for task, name in units(suite) if (task["name"], name) not in done]
    bar = tqdm(total=len(todo), desc=f"leaderboard {suite['name']}", unit="unit",
               disable=None if progress is None else not progress)
    if backend == "local":
        waiting: list[tuple[dict[str, Any], str]] = []
        while todo:
            for task, name in todo:
                claim = store.claim_unit(run_id, task["name"], name)
                if claim == "run":
                    bar.set_postfix_str(f"{task['name']} / {name}")
                    torch.manual_seed(0)
                    rows = run_unit(task, suite["agents"][name], suite["seeds"], seed_offset, device)
                    store.write_unit(run_id, task["name"], name, rows)
                    bar.update(1)
                elif claim == "done":  # stored by another process running the same run
                    bar.update(1)
                else:
                    waiting.append((task, name))
                    bar.set_postfix_str(f"waiting for {len(waiting)} unit(s) run by process {claim}")
            todo, waiting = waiting, []
            if todo:
                time.sleep(WAIT_S)
    else:
        try:
            import ray
        except ImportError as exc:
            raise ValueError("backend='ray' needs Ray: pip install 'reciprocal-gym[ray]'") from exc
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(_ray_unit)
        pending = {remote.remote(task, suite["agents"][name], suite["seeds"], seed_offset, device): (task, name)
                   for task, name in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task, name = pending.pop(ready[0])
            store.write_unit(run_id, task["name"], name, ray.get(ready[0]))
            bar.set_postfix_str(f"{task['name']} / {name}")
            bar.update(1)
    bar.close()
    return run_id
