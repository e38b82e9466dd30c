"""Learned data selectors: train Stable-Baselines3 agents and compare them with the reference agents.

    python examples/learned_selectors.py --out results/learned [--quick]

Self-training (binary data, pool of 100, 20 steps per episode): PPO choosing the selection criterion each step
(``CriterionChoice`` adapter) and MaskablePPO picking raw pool indices are trained on breast_cancer (training
seeds 0..B-1), then evaluated with the reference agents (random, greedy and softmax confidence selection) on
held-out seeds of breast_cancer and on a held-out dataset (moons). Observations keep only what does not depend on
the dataset's dimension (candidates, scalars, mask), so one policy runs on both. The score is the test accuracy
after the episode, mean and 95 % interval over the held-out learners.

Bandit (10 Bernoulli arms, horizon 200): PPO picking arms from the arm statistics, against UCB1 and Thompson
sampling, scored by cumulative pseudo-regret on held-out seeds.

Writes ``selftrain_curve.png``, ``bandit_curve.png``, ``results.json``, ``summary.md`` and the trained models
(``*.zip``, loadable with ``PPO.load`` / ``MaskablePPO.load``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402

import reciprocal_gym  # noqa: E402, F401
from agents import SelectionAgent, ThompsonAgent, UCB1Agent  # noqa: E402
from reciprocal_gym.wrappers import CriterionChoice, KeepKeys  # noqa: E402
from reciprocal_gym.wrappers.sb3 import make_sb3_vec_env  # noqa: E402

KEEP = ["candidates", "scalars", "action_mask"]
STEPS = 20


def pool_kwargs(dataset: str) -> dict:
    return dict(dataset=dataset, n_labeled=10, n_pool=100, label_mode="hard", max_steps=STEPS, lam=0.01)


def keep_general(env):
    return KeepKeys(env, KEEP)


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and a 95 % normal-approximation interval."""
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half


def run_sb3(model, dataset: str, learners: int, seed: int, adapter: bool) -> np.ndarray:
    """Test accuracy after each step (steps, learners) of a trained model on held-out seeds."""
    wrappers = [keep_general, CriterionChoice] if adapter else [keep_general]
    venv = make_sb3_vec_env("Reciprocal-SelfTrain-v0", learners, wrappers=wrappers, **pool_kwargs(dataset))
    venv.seed(seed)
    obs = venv.reset()
    curve = []
    for _ in range(STEPS):
        masks = None if adapter else venv.action_masks()
        action, _ = model.predict(obs, deterministic=True, **({} if adapter else {"action_masks": masks}))
        obs, _, _, _ = venv.step(action)
        curve.append(np.asarray(venv.last_info["test_accuracy"]))
    return np.stack(curve)


def run_reference(agent, dataset: str, learners: int, seed: int) -> np.ndarray:
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=learners, vectorization_mode="vector_entry_point",
                        autoreset_mode="disabled", **pool_kwargs(dataset))
    obs, _ = envs.reset(seed=seed)
    curve = []
    for _ in range(STEPS):
        obs, _, _, _, info = envs.step(agent.act(obs))
        curve.append(info["test_accuracy"].numpy())
    return np.stack(curve)


def bandit_curve(act, learners: int, seed: int, horizon: int) -> np.ndarray:
    envs = gym.make_vec("Reciprocal-Bandit-v0", num_envs=learners, vectorization_mode="vector_entry_point",
                        n_arms=10, max_steps=horizon, autoreset_mode="disabled")
    obs, _ = envs.reset(seed=seed)
    curve = []
    for _ in range(horizon):
        obs, _, _, _, info = envs.step(act(obs))
        curve.append(info["cumulative_regret"].numpy())
    return np.stack(curve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/learned"))
    parser.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    parser.add_argument("--timesteps", type=int, default=40_000, help="training steps per self-training agent")
    parser.add_argument("--bandit-timesteps", type=int, default=100_000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    steps, bandit_steps = (512, 1024) if args.quick else (args.timesteps, args.bandit_timesteps)
    learners, held_out, horizon = (8, 8, 50) if args.quick else (32, 64, 200)
    start = time.perf_counter()
    quiet = configure(None, [])

    # --- self-training selectors ---------------------------------------------------------------------------
    train = make_sb3_vec_env("Reciprocal-SelfTrain-v0", learners, wrappers=[keep_general, CriterionChoice],
                             **pool_kwargs("breast_cancer"))
    ppo = PPO("MultiInputPolicy", train, n_steps=64, batch_size=256, seed=0, device="cpu")
    ppo.set_logger(quiet)
    ppo.learn(steps)
    ppo.save(args.out / "ppo_criterion_choice.zip")
    train_raw = make_sb3_vec_env("Reciprocal-SelfTrain-v0", learners, wrappers=[keep_general],
                                 **pool_kwargs("breast_cancer"))
    mppo = MaskablePPO("MultiInputPolicy", train_raw, n_steps=64, batch_size=256, seed=0, device="cpu")
    mppo.set_logger(quiet)
    mppo.learn(steps)
    mppo.save(args.out / "maskable_ppo_indices.zip")

    results: dict = {"selftrain": {}, "bandit": {}}
    curves: dict[str, dict[str, np.ndarray]] = {}
    for dataset in ("breast_cancer", "moons"):
        seed = 10_000  # held-out seeds: 10000 .. 10000 + held_out - 1, never used in training
        runs = {
            "random": run_reference(SelectionAgent(rule="random", seed=1), dataset, held_out, seed),
            "greedy confidence": run_reference(SelectionAgent(rule="greedy"), dataset, held_out, seed),
            "softmax confidence (tau=0.1)": run_reference(SelectionAgent(rule="softmax", tau=0.1, seed=1), dataset,
                                                          held_out, seed),
            "PPO (criterion choice)": run_sb3(ppo, dataset, held_out, seed, adapter=True),
            "MaskablePPO (pool indices)": run_sb3(mppo, dataset, held_out, seed, adapter=False),
        }
        curves[dataset] = runs
        results["selftrain"][dataset] = {name: dict(zip(("mean", "low", "high"), interval(c[-1]), strict=True))
                                         for name, c in runs.items()}

    # --- bandit ---------------------------------------------------------------------------------------------
    bandit = make_sb3_vec_env("Reciprocal-Bandit-v0", learners, n_arms=10, max_steps=horizon)
    bppo = PPO("MultiInputPolicy", bandit, n_steps=128, batch_size=512, seed=0, device="cpu")
    bppo.set_logger(quiet)
    bppo.learn(bandit_steps)
    bppo.save(args.out / "ppo_bandit.zip")

    def ppo_act(obs):
        action, _ = bppo.predict({k: v.numpy() for k, v in obs.items()}, deterministic=True)
        return torch.as_tensor(action)

    thompson = ThompsonAgent("beta", lam=1.0, seed=1)
    bandit_runs = {"UCB1": bandit_curve(UCB1Agent().act, held_out, 10_000, horizon),
                   "Thompson (Beta)": bandit_curve(thompson.act, held_out, 10_000, horizon),
                   "random": bandit_curve(SelectionAgent("mean", "random", seed=1).act, held_out, 10_000, horizon),
                   "PPO": bandit_curve(ppo_act, held_out, 10_000, horizon)}
    results["bandit"] = {name: dict(zip(("mean", "low", "high"), interval(c[-1]), strict=True))
                         for name, c in bandit_runs.items()}

    # --- outputs --------------------------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, dataset in zip(axes, curves, strict=True):
        for name, c in curves[dataset].items():
            mean = c.mean(1)
            half = 1.96 * c.std(1, ddof=1) / np.sqrt(c.shape[1])
            ax.plot(np.arange(1, STEPS + 1), mean, label=name)
            ax.fill_between(np.arange(1, STEPS + 1), mean - half, mean + half, alpha=0.2)
        ax.set_title(f"{dataset} (held-out seeds{'' if dataset == 'breast_cancer' else ', held-out dataset'})")
        ax.set_xlabel("self-training step")
        ax.set_ylabel("test accuracy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "selftrain_curve.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in bandit_runs.items():
        ax.plot(np.arange(1, horizon + 1), c.mean(1), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative pseudo-regret")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "bandit_curve.png", dpi=120)
    plt.close(fig)
    (args.out / "results.json").write_text(json.dumps({"settings": {"timesteps": steps, "bandit_timesteps":
                                                                    bandit_steps, "training_learners": learners,
                                                                    "held_out_learners": held_out},
                                                       "results": results}, indent=1))
    lines = ["# Learned data selectors against the reference agents", "",
             f"PPO / MaskablePPO trained for {steps} steps on breast_cancer ({learners} learners), evaluated on "
             f"{held_out} held-out seeds; test accuracy after {STEPS} self-training steps (mean [95 % interval]).",
             "", "| agent | breast_cancer (held-out seeds) | moons (held-out dataset) |", "|---|---|---|"]
    for name in curves["breast_cancer"]:
        cells = [results["selftrain"][d][name] for d in ("breast_cancer", "moons")]
        lines.append(f"| {name} | " + " | ".join(f"{c['mean']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"
                                               for c in cells) + " |")
    lines += ["", f"Bandit (10 Bernoulli arms, horizon {horizon}), PPO trained for {bandit_steps} steps; cumulative "
              "pseudo-regret on held-out seeds:", "", "| agent | regret |", "|---|---|"]
    lines += [f"| {name} | {c['mean']:.2f} [{c['low']:.2f}, {c['high']:.2f}] |"
              for name, c in results["bandit"].items()]
    lines += ["", f"Total time {time.perf_counter() - start:.0f} s."]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
