"""Scores, the ranked table, and the Markdown / JSON / HTML exports of a leaderboard run.

Normalized score of a (task, agent, seed): ``(final - R) / (U - R)`` with R the random agent's mean final metric on
the task and U the mean upper reference (a task with ``"score": "auc"`` scores the metric's mean over the steps, the
area under its learning curve, in place of the final metric): for self-training and active learning the test
accuracy of the model fitted on all true labels of the labeled set and pool; for bandits the optimal arm (regret 0);
for the solver task the best omega of the grid in hindsight for every system. So random = 0, the reference = 1 (an
agent can beat the all-labels fit, or a regret can be worse than random's: scores are not clipped). A task whose
reference equals random's mean scores 0 for every agent. Agents are ranked by the IQM of their scores over all
(task, seed) pairs, with stratified bootstrap 95 % intervals, one table per environment; ``P(>next)`` is the
probability of improvement over the next agent.

A metric stored as missing (not a finite number) is left out of the scores and counted in the ``missing`` column;
a run whose units are not all stored (it stopped early, or is still running) is marked incomplete everywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from reciprocal_gym.envs.scoring import scoring_of
from reciprocal_gym.leaderboard.stats import iqm, probability_of_improvement, stratified_bootstrap_ci


def scores(results: list[dict[str, Any]], score_of: dict[str, str] | None = None
           ) -> dict[str, dict[str, np.ndarray]]:
    """agent -> task -> normalized scores over seeds; ``score_of``: task -> ``"final"`` (default) or ``"auc"``, the
    result field scored (the metric at the last step or its mean over the steps)."""
    score_of = score_of or {}
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_task[r["task"]].append(r)
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for task, rows in by_task.items():
        field = score_of.get(task, "final")
        random_rows = [r for r in rows if r["agent"] == "random" and r[field] is not None
                       and r["reference"] is not None]
        if not random_rows:  # not run yet (an incomplete run), or every random metric missing: not normalizable
            continue
        low = float(np.mean([r[field] for r in random_rows]))
        high = float(np.mean([r["reference"] for r in random_rows]))
        span = high - low
        agents: dict[str, list[float]] = defaultdict(list)
        for r in sorted(rows, key=lambda r: r["seed"]):
            if r[field] is not None:
                agents[r["agent"]].append((r[field] - low) / span if abs(span) > 1e-12 else 0.0)
        for agent, values in agents.items():
            out[agent][task] = np.asarray(values)
    return out


def _tidy(value: float) -> float:
    """A figure as a float, with rounding residue below 1e-12 (e.g. the random agent's mean of -1e-17) set to 0."""
    value = float(value)
    return 0.0 if abs(value) < 1e-12 else value


def table(results: list[dict[str, Any]], reps: int = 2000, score_of: dict[str, str] | None = None
          ) -> list[dict[str, Any]]:
    """The ranked rows: agent, IQM with its interval, mean, per-task means, verdict shares, P(> next)."""
    # tasks an agent has no score on (every metric missing) are left out, so that intervals see only real values
    per_agent = {a: {t: v for t, v in tasks.items() if len(v)} for a, tasks in scores(results, score_of).items()}
    verdicts: dict[str, Counter] = defaultdict(Counter)
    missing: Counter = Counter()
    for r in results:
        verdicts[r["agent"]][r["verdict"]] += 1
        missing[r["agent"]] += r["final"] is None
    rows = []
    for agent, tasks in per_agent.items():
        if not tasks:
            continue
        everything = np.concatenate(list(tasks.values()))
        low, high = stratified_bootstrap_ci(tasks, reps=reps)
        total = sum(verdicts[agent].values())
        rows.append({"agent": agent, "iqm": _tidy(iqm(everything)), "ci_low": _tidy(low), "ci_high": _tidy(high),
                     "mean": _tidy(everything.mean()), "tasks": {t: _tidy(v.mean()) for t, v in tasks.items()},
                     "n": len(everything), "missing": int(missing[agent]),
                     "verdicts": {k: verdicts[agent][k] / total for k in sorted(verdicts[agent])}})
    rows.sort(key=lambda r: (-r["iqm"], r["agent"]))
    for a, b in zip(rows, rows[1:], strict=False):
        if per_agent[a["agent"]].keys() & per_agent[b["agent"]].keys():
            a["p_better_than_next"] = probability_of_improvement(per_agent[a["agent"]], per_agent[b["agent"]])
    return rows


def tables(info: dict[str, Any], results: list[dict[str, Any]], reps: int = 2000) -> dict[str, list[dict[str, Any]]]:
    """One ranked table per environment (so agents are compared on the same tasks), keyed by env id."""
    env_of = {t["name"]: t["env"] for t in info["suite_def"]["tasks"]}
    score_of = {t["name"]: t.get("score", "final") for t in info["suite_def"]["tasks"]}
    out = {}
    for env_id in dict.fromkeys(env_of.values()):
        subset = [r for r in results if env_of.get(r["task"]) == env_id]
        if subset:
            out[env_id] = table(subset, reps, score_of)
    return out


def status(info: dict[str, Any]) -> str:
    """"" for a complete run; else a line saying that it is incomplete and how many units are missing."""
    missing = info.get("missing_units") or []
    if not missing:
        return ""
    return (f"INCOMPLETE run: {len(missing)} of {info['units']} (task, agent) units are missing (stopped early, or "
            "still running); finish it with `reciprocal-gym leaderboard run --resume` and the same suite")


def _missing_note(rows: list[dict[str, Any]]) -> str:
    gaps = [f"{r['agent']} ({r['missing']})" for r in rows if r.get("missing")]
    return f"missing metrics (not finite, left out of the scores): {', '.join(gaps)}" if gaps else ""


def text_tables(groups: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for g, rows in groups.items():
        note = _missing_note(rows)
        parts.append(f"{g}:\n{text_table(rows)}" + (f"\n{note}" if note else ""))
    return "\n\n".join(parts)


def text_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'rank':>4}  {'agent':<26}{'IQM score':>10}  {'95% CI':<17}{'mean':>7}{'P(>next)':>10}  {'converged':>9}"
    lines = [head, "-" * len(head)]
    for i, r in enumerate(rows, 1):
        p = f"{r['p_better_than_next']:.2f}" if "p_better_than_next" in r else "-"
        conv = r["verdicts"].get("converged", 0.0)
        lines.append(f"{i:>4}  {r['agent']:<26}{r['iqm']:>10.3f}  [{r['ci_low']:6.3f}, {r['ci_high']:6.3f}] "
                     f"{r['mean']:>7.3f}{p:>10}  {conv:>9.0%}")
    return "\n".join(lines)


def markdown(info: dict[str, Any], groups: dict[str, list[dict[str, Any]]]) -> str:
    lines = [f"# Leaderboard: suite `{info['suite']}` (run {info['run_id']})", "",
             f"{info['suite_def']['seeds']} seeds per task; score: random agent = 0, upper reference = 1; IQM over "
             "(task, seed) with stratified bootstrap 95 % intervals. Versions: "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
             + (f"; git {info['git_revision'][:10]}" if info.get("git_revision") else "") + ".", ""]
    if status(info):
        lines += [f"**{status(info)}**", ""]
    for group, rows in groups.items():
        note = _missing_note(rows)
        lines += [f"## {group}", "", _markdown_rows(rows)] + ([note, ""] if note else [])
    lines += ["## Tasks", "", "| task | env | steps | score | what it probes |", "|---|---|---|---|---|"]
    for task in info["suite_def"]["tasks"]:
        lines.append(f"| {task['name']} | {task['env']} | {task['steps']} | {task.get('score', 'final')} | "
                     f"{task.get('probes', '')} |")
    return "\n".join(lines) + "\n"


def _markdown_rows(rows: list[dict[str, Any]]) -> str:
    tasks = sorted({t for r in rows for t in r["tasks"]})
    lines = ["| rank | agent | IQM score | 95 % CI | mean | P(> next) | converged |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        p = f"{r['p_better_than_next']:.2f}" if "p_better_than_next" in r else "-"
        lines.append(f"| {i} | {r['agent']} | {r['iqm']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
                     f"{r['mean']:.3f} | {p} | {r['verdicts'].get('converged', 0.0):.0%} |")
    lines += ["", "Mean score per task:", "", "| agent | " + " | ".join(tasks) + " |",
              "|---|" + "---|" * len(tasks)]
    for r in rows:
        lines.append(f"| {r['agent']} | " + " | ".join(f"{r['tasks'][t]:.3f}" if t in r["tasks"] else "-"
                                                       for t in tasks) + " |")
    return "\n".join(lines) + "\n"


def as_json(info: dict[str, Any], groups: dict[str, list[dict[str, Any]]]) -> str:
    meta = {k: info[k] for k in ("run_id", "suite", "settings", "versions", "git_revision", "started")}
    meta["complete"] = not info.get("missing_units")
    meta["missing_units"] = [list(u) for u in info.get("missing_units", [])]
    return json.dumps({"run": meta, "tables": groups}, indent=1)


def curve_label(task: dict[str, Any]) -> str:
    """The y-axis of a task's learning curve, as its env declares it for the task's metric."""
    try:
        scoring = scoring_of(task["env"])
    except Exception:  # noqa: BLE001 (a run stored by another version may name an env this one lacks)
        return "metric"
    return scoring.labels.get(task.get("metric", scoring.metrics[0]), "metric")


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode()


def html_page(info: dict[str, Any], groups: dict[str, list[dict[str, Any]]], results: list[dict[str, Any]]) -> str:
    """A self-contained page: the ranked table, a learning-curve panel per task and the verdict shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_task[r["task"]][r["agent"]].append(r["curve"])
    tasks = {t["name"]: t for t in info["suite_def"].get("tasks", [])}
    images = []
    for task, agents in sorted(by_task.items()):
        spec = tasks.get(task, {})
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        for agent, curves in sorted(agents.items()):
            values = np.array([[np.nan if v is None else v for v in c] for c in curves], dtype=float)
            if np.isfinite(values).any(0).all():  # a step where every seed's value is missing: no mean there
                ax.plot(np.arange(1, values.shape[1] + 1), np.nanmean(values, 0), label=agent)
        ax.set_title(f"{task} ({spec['env']})" if "env" in spec else task, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(curve_label(spec) if "env" in spec else "metric")
        ax.legend(fontsize=7)
        fig.tight_layout()
        images.append((task, _png(fig)))
        plt.close(fig)
    rows = [r for group in groups.values() for r in group if r["agent"] != "random"]
    rows += [r for r in next(iter(groups.values()), []) if r["agent"] == "random"]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.4 * len(rows)))
    names = [r["agent"] for r in rows][::-1]
    left = np.zeros(len(names))
    for verdict, colour in (("converged", "#2a9d8f"), ("stationary", "#8ab17d"), ("oscillating", "#e9c46a"),
                            ("undecided", "#adb5bd"), ("diverging", "#e76f51")):
        share = np.array([r["verdicts"].get(verdict, 0.0) for r in rows][::-1])
        ax.barh(names, share, left=left, color=colour, label=verdict)
        left += share
    ax.set_xlabel("share of (task, seed) runs")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    verdict_png = _png(fig)
    plt.close(fig)
    tables_html = "".join(
        f"<h2>{html.escape(group)}</h2><table class='leaderboard'><thead><tr><th>rank</th>"
        "<th>agent</th><th>IQM score</th><th>95 % CI</th><th>mean</th><th>P(&gt; next)</th></tr></thead><tbody>"
        + "".join(f"<tr><td>{i}</td><td>{html.escape(r['agent'])}</td><td>{r['iqm']:.3f}</td>"
                  f"<td>[{r['ci_low']:.3f}, {r['ci_high']:.3f}]</td><td>{r['mean']:.3f}</td>"
                  f"<td>{format(r['p_better_than_next'], '.2f') if 'p_better_than_next' in r else '-'}</td></tr>"
                  for i, r in enumerate(group_rows, 1))
        + "</tbody></table>" for group, group_rows in groups.items())
    figures = "".join(f"<figure><img alt='learning curves of {html.escape(t)}' src='data:image/png;base64,{b}'>"
                      "</figure>" for t, b in images)
    task_rows = "".join(
        f"<tr><td>{html.escape(t['name'])}</td><td>{html.escape(t['env'])}</td><td>{t['steps']}</td>"
        f"<td>{html.escape(t.get('score', 'final'))}</td><td>{html.escape(t.get('probes', ''))}</td></tr>"
        for t in info["suite_def"].get("tasks", []))
    tasks_html = ("<table class='tasks'><thead><tr><th>task</th><th>env</th><th>steps</th><th>score</th>"
                  f"<th>what it probes</th></tr></thead><tbody>{task_rows}</tbody></table>")
    title = f"reciprocal_gym leaderboard: {html.escape(info['suite'])} (run {info['run_id']})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(2){{text-align:left}}
table.tasks td{{text-align:left}}
figure{{display:inline-block;margin:4px;vertical-align:top}}</style></head><body>
<h1>{title}</h1>
{f"<p><strong>{html.escape(status(info))}</strong></p>" if status(info) else ""}
<p>Score: random agent = 0, upper reference = 1; IQM over (task, seed) with stratified bootstrap 95 % intervals.</p>
{tables_html}
<h2>Learning curves</h2>{figures}
<h2>Convergence verdicts</h2><img alt="convergence verdicts" src="data:image/png;base64,{verdict_png}">
<h2>Tasks</h2>{tasks_html}
</body></html>
"""
