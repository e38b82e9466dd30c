import json
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from reciprocal_gym.cli import main
from reciprocal_gym.leaderboard import report
from reciprocal_gym.leaderboard.stats import iqm, probability_of_improvement, stratified_bootstrap_ci
from reciprocal_gym.leaderboard.store import Store
from reciprocal_gym.leaderboard.suite import load_suite

TINY = {
    "name": "tiny",
    "seeds": 4,
    "tasks": [
        {"name": "st", "kind": "pool", "env": "Reciprocal-SelfTrain-v0", "steps": 4,
         "kwargs": {"dataset": "wine", "n_labeled": 9, "n_pool": 30}, "agents": ["random", "greedy", "softmax"]},
        {"name": "al", "kind": "pool", "env": "Reciprocal-ActiveLearn-v0", "steps": 4,
         "kwargs": {"dataset": "iris", "n_labeled": 6, "n_pool": 30, "budget": 4}, "agents": ["random", "softmax u"]},
        {"name": "bandit", "kind": "bandit", "env": "Reciprocal-Bandit-v0", "steps": 30,
         "kwargs": {"n_arms": 4}, "agents": ["random", "UCB1", "Thompson"]},
        {"name": "relax", "kind": "solver", "env": "Reciprocal-SolverRelax-v0", "steps": 3,
         "kwargs": {"grid": 4, "report_best": True}, "agents": ["random", "cost"]},
    ],
    "agents": {
        "random": {"class": "SelectionAgent", "params": {"criterion": "none", "rule": "random"}},
        "greedy": {"class": "SelectionAgent", "params": {"criterion": "confidence", "rule": "greedy"}},
        "softmax": {"class": "SelectionAgent", "params": {"criterion": "confidence", "rule": "softmax", "tau": 0.1}},
        "softmax u": {"class": "SelectionAgent", "params": {"criterion": "uncertainty", "rule": "softmax"}},
        "UCB1": {"class": "UCB1Agent", "params": {}},
        "Thompson": {"class": "ThompsonAgent", "params": {"kind": "beta"}},
        "cost": {"class": "SelectionAgent", "params": {"criterion": "low_cost", "rule": "greedy"}},
    },
}


def _suite(tmp_path, **changes):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(dict(TINY, **changes)))
    return path


def _rows(db):
    with sqlite3.connect(db) as con:
        return con.execute("SELECT task, agent, seed, final, auc, reference, verdict, curve_json FROM results "
                           "ORDER BY task, agent, seed").fetchall()


def test_run_show_and_exports(tmp_path, capsys):
    suite = _suite(tmp_path)
    db = tmp_path / "board.sqlite"
    assert main(["leaderboard", "run", "--suite", str(suite), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "Reciprocal-Bandit-v0:" in out and "Thompson" in out and "IQM score" in out
    assert len(_rows(db)) == 4 * (3 + 2 + 3 + 2)
    paths = {k: tmp_path / f"board.{k}" for k in ("md", "json", "html")}
    assert main(["leaderboard", "show", "--db", str(db), "--markdown", str(paths["md"]), "--json",
                 str(paths["json"]), "--html", str(paths["html"])]) == 0
    tables = json.loads(paths["json"].read_text())["tables"]
    assert set(tables) == {"Reciprocal-SelfTrain-v0", "Reciprocal-ActiveLearn-v0", "Reciprocal-Bandit-v0",
                           "Reciprocal-SolverRelax-v0"}
    random_row = next(r for r in tables["Reciprocal-Bandit-v0"] if r["agent"] == "random")
    assert random_row["mean"] == pytest.approx(0.0, abs=1e-12)  # the zero of the score
    page = paths["html"].read_text()
    assert page.count("<table class='leaderboard'") == 4 and page.count("<table class='tasks'") == 1
    assert page.count("data:image/png;base64,") >= 5
    assert "nan" not in paths["md"].read_text().lower()


def test_same_suite_and_seeds_give_identical_results(tmp_path):
    suite = _suite(tmp_path)
    for name in ("a", "b"):
        assert main(["leaderboard", "run", "--suite", str(suite), "--db", str(tmp_path / f"{name}.sqlite")]) == 0
    assert _rows(tmp_path / "a.sqlite") == _rows(tmp_path / "b.sqlite")


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    slow = dict(TINY, tasks=[dict(t, steps=t["steps"] * 5) for t in TINY["tasks"]])
    suite = tmp_path / "slow.json"
    suite.write_text(json.dumps(slow))
    killed, full = tmp_path / "killed.sqlite", tmp_path / "full.sqlite"
    command = [sys.executable, "-m", "reciprocal_gym.cli", "leaderboard", "run", "--suite", str(suite)]
    proc = subprocess.Popen([*command, "--db", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    written = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if killed.exists():
            try:
                written = len(_rows(killed))
            except sqlite3.OperationalError:
                continue
            if written >= 8:  # at least two units done, the rest not yet
                break
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(_rows(killed))
    assert 0 < partial < 40
    assert subprocess.run([*command, "--db", str(killed), "--resume"], capture_output=True).returncode == 0
    assert subprocess.run([*command, "--db", str(full)], capture_output=True).returncode == 0
    assert _rows(killed) == _rows(full)
    with sqlite3.connect(killed) as con:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # resumed into the same run


def test_statistics():
    assert iqm(np.arange(8.0)) == pytest.approx(3.5)  # the middle half: 2, 3, 4, 5
    assert iqm(np.array([0.0, 0, 0, 100])) == pytest.approx(0.0)
    assert iqm(np.arange(10.0)) == pytest.approx(np.mean([2.5, 3, 4, 5, 6, 6.5]) * 6 / 6, rel=0.05)
    low, high = stratified_bootstrap_ci({"a": np.arange(10.0), "b": np.arange(10.0) + 5}, reps=500)
    assert low < iqm(np.concatenate([np.arange(10.0), np.arange(10.0) + 5])) < high
    better = {"t": np.array([2.0, 3.0]), "u": np.array([1.0])}
    worse = {"t": np.array([1.0, 2.0]), "u": np.array([1.0])}
    # task t: pairs (2>1, 2=2, 3>1, 3>2) -> (1 + 0.5 + 1 + 1) / 4; task u: a tie -> 0.5
    assert probability_of_improvement(better, worse) == pytest.approx((3.5 / 4 + 0.5) / 2)


def test_builtin_suites_load_and_bad_suites_are_refused(tmp_path, capsys):
    quick, full = load_suite("quick"), load_suite("full")
    assert quick["seeds"] >= 20 and full["seeds"] >= 20
    assert {t["env"] for t in full["tasks"]} >= {"Reciprocal-SelfTrain-v0", "Reciprocal-ActiveLearn-v0",
                                                 "Reciprocal-Bandit-v0", "Reciprocal-ContextualBandit-v0",
                                                 "Reciprocal-SolverRelax-v0"}
    with pytest.raises(ValueError, match="neither"):
        load_suite("nope")
    with pytest.raises(ValueError, match="does not define"):
        load_suite(str(_suite(tmp_path, tasks=[dict(TINY["tasks"][0], agents=["random", "ghost"])])))
    with pytest.raises(ValueError, match="seeds"):
        load_suite(str(_suite(tmp_path, seeds=1)))
    assert main(["leaderboard", "show", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no results store" in capsys.readouterr().err


def test_store_keeps_versions_and_writes_a_unit_once(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    run = store.start_run(TINY, {"device": "cpu"}, resume=False)
    info = store.run_info(run)
    assert "torch" in info["versions"] and info["suite"] == "tiny"
    row = {"seed": 0, "final": 1.0, "auc": 0.5, "reference": 1.0, "verdict": "undecided", "curve": [1.0]}
    assert store.write_unit(run, "st", "random", [row])
    assert not store.write_unit(run, "st", "random", [dict(row, final=0.0)])  # stored already: not written again
    assert [r["final"] for r in store.results(run)] == [1.0]
    assert store.start_run(TINY, {"device": "cpu"}, resume=True) == run
    assert report.scores(store.results(run))["random"]["st"].tolist() == [0.0]


def test_a_saved_sb3_model_is_a_leaderboard_agent(tmp_path, capsys):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import configure

    from reciprocal_gym.wrappers import KeepKeys
    from reciprocal_gym.wrappers.sb3 import make_sb3_vec_env

    keys = ["candidates", "scalars", "action_mask"]
    kwargs = TINY["tasks"][0]["kwargs"]
    venv = make_sb3_vec_env("Reciprocal-SelfTrain-v0", 4, wrappers=[lambda e: KeepKeys(e, keys)], max_steps=4,
                            **kwargs)
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, seed=0)
    model.set_logger(configure(None, []))
    model.learn(64)
    model.save(tmp_path / "selector.zip")
    suite = dict(TINY, tasks=[dict(TINY["tasks"][0], agents=["random", "learned"])],
                 agents=dict(TINY["agents"], learned={"sb3": str(tmp_path / "selector.zip"), "algo": "MaskablePPO",
                                                     "keys": keys}))
    path = tmp_path / "learned.json"
    path.write_text(json.dumps(suite))
    assert main(["leaderboard", "run", "--suite", str(path), "--db", str(tmp_path / "l.sqlite")]) == 0
    assert "learned" in capsys.readouterr().out
    assert {r[1] for r in _rows(tmp_path / "l.sqlite")} == {"random", "learned"}


def test_ray_backend_gives_the_results_of_the_local_backend(tmp_path):
    import ray

    suite = _suite(tmp_path)
    local, distributed = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    assert main(["leaderboard", "run", "--suite", str(suite), "--db", str(local)]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main(["leaderboard", "run", "--suite", str(suite), "--db", str(distributed), "--backend", "ray"]) == 0
    finally:
        ray.shutdown()
    assert _rows(local) == _rows(distributed)


def test_bench_command_reports_every_env(capsys):
    import reciprocal_gym

    assert main(["bench", "--num-envs", "2", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert all(env_id in out for env_id in reciprocal_gym.ENV_IDS)


def test_the_quick_suites_learning_tasks_separate_their_agents():
    """Each self-training task of the quick suite has at least one pair of reference agents whose 95 % intervals do
    not overlap (the tasks were chosen where selection matters; scored by the gain's learning-curve AUC)."""
    from reciprocal_gym.leaderboard.separation import task_separation

    suite = load_suite("quick")
    for task in suite["tasks"]:
        if task["env"] != "Reciprocal-SelfTrain-v0":
            continue
        assert task["score"] == "auc" and task["metric"] == "test_accuracy_gain" and task["probes"]
        result = task_separation(task, suite, suite["seeds"])
        assert result["separated_pairs"], (task["name"], result["agents"])


def test_tasks_scored_by_auc_use_the_curves_mean_and_the_task_list_says_what_each_probes():
    from reciprocal_gym.leaderboard import report

    rows = [{"task": "t", "agent": a, "seed": s, "final": f, "auc": u, "reference": 1.0, "verdict": "converged"}
            for a, s, f, u in (("random", 0, 0.5, 0.2), ("random", 1, 0.5, 0.4), ("x", 0, 0.5, 0.7),
                               ("x", 1, 0.5, 0.7))]
    assert report.scores(rows)["x"]["t"].tolist() == [0.0, 0.0]  # equal finals
    auc = report.scores(rows, {"t": "auc"})["x"]["t"]  # (0.7 - 0.3) / (1 - 0.3)
    assert np.allclose(auc, [0.4 / 0.7, 0.4 / 0.7])
    info = {"suite": "s", "run_id": 1, "versions": {}, "suite_def": {"seeds": 2, "tasks": [
        {"name": "t", "env": "Reciprocal-SelfTrain-v0", "steps": 3, "score": "auc", "probes": "what t probes"}]}}
    text = report.markdown(info, {"Reciprocal-SelfTrain-v0": report.table(rows, 50, {"t": "auc"})})
    assert "| t | Reciprocal-SelfTrain-v0 | 3 | auc | what t probes |" in text
