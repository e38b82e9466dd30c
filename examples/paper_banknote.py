"""The seed paper's experiment: pseudo-label selection criteria on the Swiss banknote data.

    python examples/paper_banknote.py --out results/paper_banknote [--quick] [--runs 40]

The setup of Rodemann et al., "Reciprocal Learning" (NeurIPS 2024), Appendix C: the Swiss banknote data (Flury and
Riedwyl 1988: 200 notes, genuine or counterfeit), logistic regression on Diagonal, Bottom and Length with an
intercept, unpenalized and refitted from scratch each step like R's ``glm`` (``lam=0, solver="irls",
penalize_intercept=False, standardize="none"``), hard pseudo-labels, add-only self-training with one point per step
until the pool is empty. Each run splits the notes at random into halves (test / train) and leaves 70 %, 80 % or 90 %
of the training half unlabeled (every labeled set holds both classes). 40 runs per share, all run as one batch of
learners (``split_rows``, one row of ids per learner). Five greedy criteria:

- ``PPP``: the pseudo-posterior predictive (Laplace approximation of the extended training set's evidence);
- ``likelihood``: the max-max likelihood after refitting with the candidate;
- ``predictive variance``: the candidate whose linear predictor has the smallest standard error;
- ``probability score``: the most probable pseudo-label;
- ``PPP, label-marginal``: a variant written here as a user's criterion, through the public API only: the
  candidate's evidence under either label, weighted by the model's probability of that label (two batched
  look-ahead refits per step).

Without a penalty the fit does not exist when the labeled classes are separated, which on these data is common;
like R's ``glm`` the env then stops after 25 IRLS iterations (it flags those fits, ``info["fit_separated"]``, and the
summary reports their share), so |theta| can be large. Writes ``theta_paths.png`` (mean |theta_t| over t per
criterion and share, as the paper's figure), ``total_variation.png`` (the per-run total variation of |theta_t|),
``results.json`` (every run) and ``summary.md`` (final test accuracy and total variation per criterion and share).
``--quick`` runs 4 runs at one share (seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from agents import SelectionAgent  # noqa: E402
from reciprocal_gym import SelectionContext, selection_context  # noqa: E402
from reciprocal_gym.data import load_dataset  # noqa: E402
from reciprocal_gym.learners.lookahead import laplace_log_evidence, refit_each_candidate  # noqa: E402

FEATURES = ("Diagonal", "Bottom", "Length")
GLM = dict(lam=0.0, solver="irls", penalize_intercept=False, standardize="none")


def ppp_label_marginal(obs: dict[str, torch.Tensor], context: SelectionContext) -> torch.Tensor:
    """A user's PPP variant: ``log sum_y p(y | x_c) exp(evidence(D + (x_c, y)))``, the candidate's evidence averaged
    over its label under the current model instead of fixed at the most probable label."""
    keep = (context.train_mass > 0).any(0)
    Z = context.features(context.train_rows[:, keep])
    w, y = context.train_mass[:, keep], context.train_labels[:, keep, 1]
    Zc = context.features(context.pool_rows)
    lam, pen = context.lam_sum(extra_mass=1.0), context.penalty_mask()
    terms = []
    for label in (0.0, 1.0):
        yc = torch.full_like(context.logits, label)
        fit = refit_each_candidate(Z, w, y, Zc, yc, lam, pen, context.theta, solver="irls", tol=1e-8, max_iter=25)
        terms.append(context.log_probs[..., int(label)] + laplace_log_evidence(fit, lam, pen))
    return torch.logsumexp(torch.stack(terms), 0)


CRITERIA = {
    "PPP": "ppp",
    "likelihood": "likelihood",
    "predictive variance": "predictive_variance",
    "probability score": "probability_score",
    "PPP, label-marginal (custom)": ppp_label_marginal,
}


def draw_splits(y: np.ndarray, runs: int, share: float, seed: int) -> dict[str, np.ndarray]:
    """Row ids per run: half the notes for testing, the other half for training, ``share`` of it unlabeled; each
    labeled set holds both classes (redrawn otherwise)."""
    n = len(y)
    n_train = n // 2
    n_unlabeled = round(share * n_train)
    rows = {"labeled": [], "pool": [], "test": []}
    rng = np.random.default_rng([seed, round(share * 100)])
    while len(rows["test"]) < runs:
        order = rng.permutation(n)
        test, train = order[: n - n_train], order[n - n_train :]
        labeled, pool = train[: n_train - n_unlabeled], train[n_train - n_unlabeled :]
        if len(np.unique(y[labeled])) < 2:
            continue
        for key, value in (("labeled", labeled), ("pool", pool), ("test", test)):
            rows[key].append(value)
    return {key: np.stack(value) for key, value in rows.items()}


def theta_norm(context: SelectionContext) -> np.ndarray:
    """|theta| per learner on the raw features (coefficients and intercept), as glm reports them."""
    return torch.cat([context.coef, context.intercept[:, None]], 1).norm(dim=1).cpu().numpy()


def run(criterion, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Self-train every run with one criterion until the pool is empty."""
    runs, n_pool = rows["pool"].shape
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=runs, vectorization_mode="vector_entry_point",
                       dataset="swiss_banknote", dataset_kwargs={"features": FEATURES}, split_rows=rows,
                       label_mode="hard", adaptation="add", k=1, reward="stability", max_steps=n_pool,
                       autoreset_mode="disabled", **GLM)
    agent = SelectionAgent(criterion, rule="greedy")
    obs, info = env.reset(seed=0)
    norms, separated = [theta_norm(selection_context(env))], [info["fit_separated"].cpu().numpy()]
    for _ in range(n_pool):
        obs, _, terminated, _, info = env.step(agent.act_in(env, obs))
        norms.append(theta_norm(selection_context(env)))
        separated.append(info["fit_separated"].cpu().numpy())
    assert bool(terminated.all())  # the pool is used up
    paths = np.stack(norms, 1)  # (runs, n_pool + 1)
    return {"theta_norm": paths, "total_variation": np.abs(np.diff(paths, axis=1)).sum(1),
            "test_accuracy": info["test_accuracy"].cpu().numpy(), "separated_share": np.mean(separated)}


def plot(results: dict, shares: list[float], out: Path) -> None:
    fig, axes = plt.subplots(1, len(shares), figsize=(5 * len(shares), 4), squeeze=False)
    for ax, share in zip(axes[0], shares, strict=True):
        for name, res in results[share].items():
            paths = res["theta_norm"]
            ax.plot(np.arange(paths.shape[1]), paths.mean(0), label=name)
        ax.set_yscale("log")
        ax.set_title(f"{round(share * 100)} % unlabeled")
        ax.set_xlabel("step t (one pseudo-label per step)")
        ax.set_ylabel("mean |theta_t| (raw units)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "theta_paths.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(shares), figsize=(5 * len(shares), 4), squeeze=False)
    for ax, share in zip(axes[0], shares, strict=True):
        names = list(results[share])
        ax.boxplot([results[share][n]["total_variation"] for n in names], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), [n.split(" (")[0].replace(", ", "\n") for n in names], fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"{round(share * 100)} % unlabeled")
        ax.set_ylabel("total variation of |theta_t| per run")
    fig.tight_layout()
    fig.savefig(out / "total_variation.png", dpi=120)
    plt.close(fig)


def summarize(results: dict, shares: list[float], runs: int, seconds: float) -> str:
    lines = [f"# Swiss banknote, the seed paper's Appendix C setup ({runs} runs per share, {seconds:.0f} s)", "",
             f"Logistic regression on {', '.join(FEATURES)} with intercept, unpenalized glm fits from scratch, hard "
             "pseudo-labels, one per step until the pool is empty; greedy selection.", "",
             "| unlabeled | criterion | final test accuracy (mean +- s.e.) | median total variation of abs(theta) "
             "| separated fits |", "|---:|---|---:|---:|---:|"]
    for share in shares:
        for name, res in results[share].items():
            acc = res["test_accuracy"]
            se = acc.std(ddof=1) / math.sqrt(len(acc)) if len(acc) > 1 else 0.0
            lines.append(f"| {round(share * 100)} % | {name} | {acc.mean():.3f} +- {se:.3f} | "
                         f"{np.median(res['total_variation']):.3g} | {100 * res['separated_share']:.0f} % |")
    lines += ["", "Figures: `theta_paths.png` (mean abs(theta_t) over t, as the paper's figure), "
              "`total_variation.png`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/paper_banknote"))
    parser.add_argument("--runs", type=int, default=40, help="random splits per share")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 runs at 80 %% unlabeled")
    args = parser.parse_args()
    shares = [0.8] if args.quick else [0.7, 0.8, 0.9]
    runs = 4 if args.quick else args.runs
    if runs < 1:
        parser.error(f"--runs={runs} is not allowed; it must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    y = load_dataset("swiss_banknote").y
    results: dict[float, dict[str, dict]] = {}
    start = time.time()
    with warnings.catch_warnings(), tqdm(total=len(shares) * len(CRITERIA), desc="share x criterion") as bar:
        warnings.simplefilter("ignore")  # separated glm fits: counted in the summary instead
        for share in shares:
            rows = draw_splits(y, runs, share, args.seed)
            results[share] = {}
            for name, criterion in CRITERIA.items():
                results[share][name] = run(criterion, rows)
                bar.update()
    seconds = time.time() - start
    plot(results, shares, args.out)
    summary = summarize(results, shares, runs, seconds)
    (args.out / "summary.md").write_text(summary)
    payload = {"features": FEATURES, "runs": runs, "seed": args.seed, "seconds": seconds,
               "results": {str(share): {name: {key: np.asarray(value).tolist() for key, value in res.items()}
                                        for name, res in by_name.items()} for share, by_name in results.items()}}
    (args.out / "results.json").write_text(json.dumps(payload))
    print(summary)


if __name__ == "__main__":
    main()
