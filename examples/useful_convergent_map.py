"""Where is self-training both useful and convergent? A sweep over label and selection temperatures.

    python examples/useful_convergent_map.py --out results/useful_map [--quick]

Mean-field self-training (``adaptation="expected"``: the pseudo-labeled part moves deterministically toward k times
the selection law, so settling can be checked exactly) of a ridge-logistic learner, with sharpened soft labels
(``label_temperature`` T: T = 1 the predicted probabilities, T -> 0 hard labels) and softmax(confidence / tau)
selection, over a grid of (T, tau) and two pseudo-label shares k / n_labeled, on two datasets. Per cell, over the
seeds: the share of runs that settle (|theta_t - theta_(t-1)| <= 1e-6 at the last step), the median contraction rate
(geometric mean of successive step ratios from the second step on, while steps are above 1e-12; 0 when the run
stopped moving within three steps) and the mean test-accuracy gain over each learner's labeled-only fit
(``info["test_accuracy_gain"]``). A cell is *useful and convergent* when at least 90 % of its runs settle and the
gain's 95 % interval lies above 0.

Writes ``map_<dataset>.png`` (settle share and gain per (T, tau), useful-and-convergent cells marked),
``results.json`` (every cell) and ``summary.md``. ``--quick`` runs a small grid (under a minute).
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

import reciprocal_gym  # noqa: E402, F401
from agents import SelectionAgent  # noqa: E402

DATASETS = {
    "moons": dict(dataset="moons", dataset_kwargs={"n_samples": 400, "noise": 0.15}, n_labeled=10, n_pool=150),
    "breast_cancer": dict(dataset="breast_cancer", n_labeled=10, n_pool=150),
}
SETTLED = 1e-6


def run_cell(setting: dict, temperature: float, tau: float, share: float, seeds: int, steps: int,
             lam: float) -> dict:
    """One (T, tau, share) cell: settle share, median rate and accuracy gain over ``seeds`` learners."""
    k = max(1, round(share * setting["n_labeled"]))
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=seeds, vectorization_mode="vector_entry_point",
                       adaptation="expected", label_temperature=temperature, k=k, lam=lam, max_steps=steps + 1,
                       autoreset_mode="disabled", **setting)
    agent = SelectionAgent(criterion="confidence", rule="softmax", tau=tau, law=True, seed=0)
    obs, _ = env.reset(seed=0)
    changes = []
    for _ in range(steps):
        obs, _, _, _, info = env.step(agent.act(obs))
        changes.append(info["theta_change"].cpu().numpy())
    d = np.stack(changes, 1)  # (seeds, steps)
    ratios = []
    for row in d[:, 1:]:
        live = row[row > 1e-12]
        ratios.append(float(np.exp(np.mean(np.diff(np.log(live))))) if len(live) > 2 else 0.0)
    gain = info["test_accuracy_gain"].cpu().numpy()
    half_width = 1.96 * gain.std(ddof=1) / np.sqrt(len(gain))
    settled = float((d[:, -1] <= SETTLED).mean())
    return {"T": temperature, "tau": tau, "share": share, "k": k, "settled": settled,
            "rate": float(np.median(ratios)), "gain": float(gain.mean()), "gain_low": float(gain.mean() - half_width),
            "gain_high": float(gain.mean() + half_width),
            "useful_and_convergent": bool(settled >= 0.9 and gain.mean() - half_width > 0)}


def plot(cells: list[dict], name: str, temps: list[float], taus: list[float], shares: list[float],
         path: Path) -> None:
    fig, axes = plt.subplots(len(shares), 2, figsize=(9, 3.4 * len(shares)), squeeze=False)
    for row, share in enumerate(shares):
        grid = {(c["T"], c["tau"]): c for c in cells if c["share"] == share}
        for col, (key, title, cmap) in enumerate((("settled", "share of runs that settle", "viridis"),
                                                  ("gain", "test-accuracy gain over labeled-only fit", "coolwarm"))):
            ax = axes[row, col]
            values = np.array([[grid[(t, tau)][key] for tau in taus] for t in temps])
            bound = max(abs(values).max(), 1e-3) if key == "gain" else 1.0
            image = ax.imshow(values, cmap=cmap, vmin=-bound if key == "gain" else 0.0, vmax=bound, origin="lower",
                              aspect="auto")
            for i, t in enumerate(temps):
                for j, tau in enumerate(taus):
                    cell = grid[(t, tau)]
                    ax.text(j, i, f"{cell[key]:.2f}" if key == "settled" else f"{cell[key]:+.3f}", ha="center",
                            va="center", fontsize=7, color="white" if key == "settled" and cell[key] < 0.5 else "k")
                    if cell["useful_and_convergent"]:
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=2))
            ax.set_xticks(range(len(taus)), [f"{tau:g}" for tau in taus])
            ax.set_yticks(range(len(temps)), [f"{t:g}" for t in temps])
            ax.set_xlabel("selection temperature tau")
            ax.set_ylabel("label temperature T")
            ax.set_title(f"{name}, share {share:g}: {title}", fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("boxed: >= 90 % of runs settle and the gain's 95 % interval is above 0", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/useful_map"))
    parser.add_argument("--quick", action="store_true", help="a small grid, few seeds and steps")
    parser.add_argument("--lam", type=float, default=0.05)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if args.quick:
        temps, taus, shares, seeds, steps = [0.1, 1.0], [0.03, 0.3], [1.0], 6, 30
    else:
        temps, taus, shares, seeds, steps = [0.05, 0.1, 0.2, 0.5, 1.0], [0.01, 0.03, 0.1, 0.3], [0.5, 2.0], 24, 80
    start = time.perf_counter()
    results: dict[str, list[dict]] = {}
    lines = ["# Useful and convergent self-training", "",
             f"Mean-field (expected) self-training, ridge-logistic learner (lam = {args.lam}), softmax(confidence / "
             f"tau) selection, sharpened soft labels (T), {seeds} seeds, {steps} steps; 10 labeled points, a "
             f"150-point pool; share = k / n_labeled. Settled: |theta_t - theta_(t-1)| <= {SETTLED:g} at the last "
             "step. Rate: median over seeds of the geometric-mean step ratio while steps exceed 1e-12. Gain: mean test-"
             "accuracy gain over the labeled-only fit, with its 95 % interval. Generated by "
             "`examples/useful_convergent_map.py`" + (" --quick" if args.quick else "") + ".", ""]
    for name, setting in DATASETS.items():
        cells = [run_cell(setting, t, tau, share, seeds, steps, args.lam) for share in shares for t in temps
                 for tau in taus]
        results[name] = cells
        plot(cells, name, temps, taus, shares, args.out / f"map_{name}.png")
        good = [c for c in cells if c["useful_and_convergent"]]
        lines += [f"## {name}", "", "| share | T | tau | settled | rate | gain [95 % CI] | useful and convergent |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['share']:g} | {c['T']:g} | {c['tau']:g} | {c['settled']:.0%} | {c['rate']:.3f} | "
                  f"{c['gain']:+.4f} [{c['gain_low']:+.4f}, {c['gain_high']:+.4f}] | "
                  f"{'yes' if c['useful_and_convergent'] else ''} |" for c in cells]
        lines += ["", f"Useful and convergent cells: {len(good)} of {len(cells)}"
                  + (": " + ", ".join(f"(share {c['share']:g}, T {c['T']:g}, tau {c['tau']:g})" for c in good)
                     if good else "."), "", f"![{name}](map_{name}.png)", ""]
    plain = [c for cells in results.values() for c in cells if c["T"] == 1.0]
    spread = max(max(c["gain"] for c in plain if c["share"] == share and c in cells)
                 - min(c["gain"] for c in plain if c["share"] == share and c in cells)
                 for cells in results.values() for share in shares)
    lines += ["## Plain soft labels (T = 1)", "",
              f"Largest |gain| over all T = 1 cells: {max(abs(c['gain']) for c in plain):.4f}; largest spread of the "
              f"T = 1 gain across tau (same dataset and share): {spread:.1e}. Plain soft labels reach the "
              "labeled-only fit with a larger ridge whatever is selected, so the selection temperature changes "
              "nothing there; what gain there is comes from the extra shrinkage, not from the pseudo-labels.",
              "", f"Run time: {time.perf_counter() - start:.0f} s."]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"settings": {"lam": args.lam, "seeds": seeds, "steps": steps,
                                                                    "datasets": list(DATASETS)},
                                                       "cells": results}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
