"""Running a suite: one batched env per (task, agent) unit, all seeds at once, written to the store unit by unit."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

import reciprocal_gym  # noqa: F401  (registers the envs)
from reciprocal_gym.leaderboard.store import Store
from reciprocal_gym.leaderboard.suite import build_agent
from reciprocal_gym.wrappers import VERDICTS, ConvergenceDiagnostics


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
    kind = task["kind"]
    reference = None
    if kind == "pool":
        reference = base.all_labels_accuracy().cpu().numpy()
    curve, best = [], np.zeros(seeds)
    for _ in range(task["steps"]):
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        if kind == "pool":
            curve.append(info["test_accuracy"].cpu().numpy())
        elif kind == "bandit":
            curve.append(info["cumulative_regret"].cpu().numpy())
        else:
            cost = info["iterations"].cpu().numpy().astype(np.float64)
            curve.append((curve[-1] if curve else 0.0) + cost)
            best += info["best_iterations"].cpu().numpy()
        if bool((terminated | truncated).any()):
            break  # an episode ended (e.g. the label budget): the curve stops here for every learner
    values = np.stack(curve, 1).astype(np.float64)  # (seeds, steps)
    if kind == "pool":
        final, auc = values[:, -1], values.mean(1)
    else:  # regret or cost: higher is worse, so the metrics are their negatives
        final, auc = -values[:, -1], -values.mean(1)
        reference = np.zeros(seeds) if kind == "bandit" else -best
    verdicts = [VERDICTS[v] for v in info["verdict"].tolist()]
    return [{"seed": seed_offset + i, "final": float(final[i]), "auc": float(auc[i]),
             "reference": float(reference[i]), "verdict": verdicts[i], "curve": values[i].tolist()}
            for i in range(seeds)]


def run_suite(suite: dict[str, Any], store: Store, resume: bool = False, device: str = "cpu",
              seed_offset: int = 0, progress: bool | None = None) -> int:
    """Run every missing unit of ``suite`` into ``store``; returns the run id."""
    settings = {"device": device, "seed_offset": seed_offset}
    run_id = store.start_run(suite, settings, resume)
    done = store.done_units(run_id)
    todo = [(task, name) for task, name in units(suite) if (task["name"], name) not in done]
    bar = tqdm(todo, desc=f"leaderboard {suite['name']}", unit="unit", disable=None if progress is None
               else not progress)
    for task, name in bar:
        bar.set_postfix_str(f"{task['name']} / {name}")
        torch.manual_seed(0)
        rows = run_unit(task, suite["agents"][name], suite["seeds"], seed_offset, device)
        store.write_unit(run_id, task["name"], name, rows)
    return run_id
