"""The leaderboard checks a whole suite and the database before anything runs, shares a database safely between
processes, keeps missing metrics as missing, and marks incomplete runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reciprocal_gym.cli import main
from reciprocal_gym.leaderboard import report
from reciprocal_gym.leaderboard.store import Store, StoreError
from reciprocal_gym.leaderboard.suite import SuiteError, validate

TINY = {
    "name": "tiny",
    "seeds": 3,
    "tasks": [
        {"name": "st", "kind": "pool", "env": "Reciprocal-SelfTrain-v0", "steps": 3,
         "kwargs": {"dataset": "iris", "n_labeled": 6, "n_pool": 20}, "agents": ["random", "greedy"]},
        {"name": "bandit", "kind": "bandit", "env": "Reciprocal-Bandit-v0", "steps": 10,
         "kwargs": {"n_arms": 4}, "agents": ["random", "UCB1"]},
    ],
    "agents": {
        "random": {"class": "SelectionAgent", "params": {"criterion": "none", "rule": "random"}},
        "greedy": {"class": "SelectionAgent", "params": {"criterion": "confidence", "rule": "greedy"}},
        "UCB1": {"class": "UCB1Agent", "params": {}},
    },
}

# one mistake each: (a function that makes it in a copy of the suite, a word its problem line must contain)
MISTAKES = {
    "bad score": (lambda s: s["tasks"][0].update(score="median"), "score='median' is not allowed"),
    "probes not text": (lambda s: s["tasks"][0].update(probes=3), "probes=3 must be a string"),
    "unknown env": (lambda s: s["tasks"][0].update(env="Reciprocal-SelfTrian-v0"), "Reciprocal-SelfTrian-v0"),
    "kwarg typo": (lambda s: s["tasks"][1]["kwargs"].update(n_arm=3), "'n_arm'"),
    "bad kwarg value": (lambda s: s["tasks"][1]["kwargs"].update(lam=-1.0), "lam=-1.0"),
    "agent param typo": (lambda s: s["agents"]["greedy"]["params"].update(tua=0.1), "'tua'"),
    "agent param value": (lambda s: s["agents"]["greedy"]["params"].update(epsilon=3), "epsilon=3"),
    "unknown agent class": (lambda s: s["agents"]["UCB1"].update({"class": "UCB2Agent"}), "UCB2Agent"),
    "wrong kind": (lambda s: s["tasks"][1].update(kind="pool"), "kind='pool'"),
    "zero steps": (lambda s: s["tasks"][0].update(steps=0), "steps=0"),
    "text steps": (lambda s: s["tasks"][1].update(steps="5"), "steps='5'"),
    "undefined agent": (lambda s: s["tasks"][0]["agents"].append("ghost"), "'ghost'"),
    "task key typo": (lambda s: s["tasks"][0].update(kwarg={}), "'kwarg'"),
    "one seed": (lambda s: s.update(seeds=1), "seeds=1"),
    "max_steps set": (lambda s: s["tasks"][1]["kwargs"].update(max_steps=5), "'max_steps'"),
    "metric of a bandit": (lambda s: s["tasks"][1].update(metric="test_accuracy_gain"), "metric="),
}


def _write(tmp_path: Path, suite: dict) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    return path


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                   HealthCheck.function_scoped_fixture])
@given(chosen=st.sets(st.sampled_from(sorted(MISTAKES)), min_size=1, max_size=5))
def test_every_mistake_of_a_suite_is_reported_at_once_before_anything_runs(tmp_path, chosen):
    suite = json.loads(json.dumps(TINY))
    for name in chosen:
        MISTAKES[name][0](suite)
    with pytest.raises(SuiteError) as caught:
        validate(suite, "test")
    text = str(caught.value)
    for name in chosen:
        assert MISTAKES[name][1] in text, (name, text)
    assert len(caught.value.problems) >= len(chosen)


def test_the_cli_reports_suite_problems_in_words_and_stores_nothing(tmp_path, capsys):
    suite = json.loads(json.dumps(TINY))
    for make, _ in MISTAKES.values():
        make(suite)
    db = tmp_path / "board.sqlite"
    assert main(["leaderboard", "run", "--suite", str(_write(tmp_path, suite)), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "problem(s); nothing was run" in err and "Traceback" not in err
    assert "did you mean 'n_arms'" in err and "did you mean 'tau'" in err
    assert not db.exists()


def test_malformed_json_names_the_file_and_the_position(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "seeds": 4, "tasks": [,]}')
    assert main(["leaderboard", "run", "--suite", str(path), "--db", str(tmp_path / "b.sqlite")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line 2 column" in err


def test_a_mistake_only_a_step_shows_is_found_before_the_first_unit(tmp_path, capsys):
    suite = json.loads(json.dumps(TINY))
    suite["agents"]["UCB1"] = {"class": "SelectionAgent", "params": {"criterion": "confidence", "rule": "greedy"}}
    db = tmp_path / "board.sqlite"  # a pool criterion on a bandit: only running it shows the mismatch
    assert main(["leaderboard", "run", "--suite", str(_write(tmp_path, suite)), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "task 'bandit' / agent 'UCB1': one step failed" in err
    assert not db.exists()


def test_bad_databases_are_refused_in_plain_words(tmp_path, capsys):
    suite = str(_write(tmp_path, TINY))
    folder = tmp_path / "a_folder"
    folder.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a database\n" * 100)
    good = tmp_path / "good.sqlite"
    Store(good).close()
    corrupted = tmp_path / "corrupted.sqlite"
    data = bytearray(good.read_bytes())
    data[:100] = b"\x07" * 100  # the header overwritten
    corrupted.write_bytes(bytes(data))
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE runs (x)")
    for db, words in ((folder, "is a directory"), (text, "not a readable SQLite database"),
                      (corrupted, "not a readable SQLite database"), (other, "not a leaderboard store")):
        assert main(["leaderboard", "run", "--suite", suite, "--db", str(db)]) == 2, db
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and str(db) in err, err
        assert main(["leaderboard", "show", "--db", str(db)]) == 2
        assert words in capsys.readouterr().err or db == folder
    readonly = Store(good, readonly=True)
    with pytest.raises(StoreError, match="read-only"):
        readonly.start_run(TINY, {}, resume=False)
    readonly.close()


def test_missing_metrics_are_stored_and_shown_as_missing(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    run = store.start_run(TINY, {"device": "cpu"}, resume=False)
    row = {"seed": 0, "final": 0.5, "auc": 0.5, "reference": 1.0, "verdict": "converged", "curve": [0.5]}
    store.write_unit(run, "st", "random", [row, dict(row, seed=1, final=0.25)])
    store.write_unit(run, "st", "greedy", [dict(row, final=float("nan"), auc=float("inf"), curve=[float("nan")]),
                                           dict(row, seed=1, final=0.75)])
    results = store.results(run)
    greedy = [r for r in results if r["agent"] == "greedy"]
    assert greedy[0]["final"] is None and greedy[0]["auc"] is None and greedy[0]["curve"] == [None]
    info = store.run_info(run)
    rows = report.tables(info, results)["Reciprocal-SelfTrain-v0"]
    best = next(r for r in rows if r["agent"] == "greedy")
    assert best["missing"] == 1 and best["n"] == 1
    assert "greedy (1)" in report.text_tables({"x": rows})
    exported = report.as_json(info, {"x": rows})
    assert "NaN" not in exported and "Infinity" not in exported
    json.loads(exported)
    assert "NaN" not in report.html_page(info, {"x": rows}, results)


def test_show_marks_an_incomplete_run_and_counts_the_missing_units(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    store = Store(db)
    run = store.start_run(TINY, {"device": "cpu", "seed_offset": 0}, resume=False)
    row = {"seed": 0, "final": 0.5, "auc": 0.5, "reference": 1.0, "verdict": "converged", "curve": [0.5]}
    store.write_unit(run, "st", "random", [row])
    store.close()
    assert main(["leaderboard", "show", "--db", str(db), "--markdown", str(tmp_path / "b.md"),
                 "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "INCOMPLETE run: 3 of 4 (task, agent) units are missing" in out
    assert "INCOMPLETE" in (tmp_path / "b.md").read_text()
    exported = json.loads((tmp_path / "b.json").read_text())
    assert exported["run"]["complete"] is False and len(exported["run"]["missing_units"]) == 3


def test_concurrent_resumed_runs_share_the_units_and_store_each_once(tmp_path):
    suite = _write(tmp_path, TINY)
    db = tmp_path / "shared.sqlite"
    Store(db).start_run(TINY, {"device": "cpu", "seed_offset": 0}, resume=False)  # the run both processes resume
    command = [sys.executable, "-m", "reciprocal_gym.cli", "leaderboard", "run", "--suite", str(suite), "--db",
               str(db), "--resume"]
    env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in runs]
    for p, (out, err) in zip(runs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err and "INCOMPLETE" not in out
    with sqlite3.connect(db) as con:
        counts = con.execute("SELECT task, agent, count(*) FROM results GROUP BY task, agent").fetchall()
        assert sorted(counts) == sorted([("st", "random", 3), ("st", "greedy", 3), ("bandit", "random", 3),
                                         ("bandit", "UCB1", 3)])
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    # and the results are those of one uninterrupted run
    single = tmp_path / "single.sqlite"
    assert main(["leaderboard", "run", "--suite", str(suite), "--db", str(single)]) == 0
    query = "SELECT task, agent, seed, final, auc, verdict, curve_json FROM results ORDER BY task, agent, seed"
    with sqlite3.connect(db) as a, sqlite3.connect(single) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_a_store_written_before_missing_metrics_were_allowed_is_migrated(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as con:  # the earlier schema: final and auc NOT NULL
        con.executescript("""
            CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, suite TEXT NOT NULL, suite_json TEXT NOT
              NULL, settings_json TEXT NOT NULL, versions_json TEXT NOT NULL, git_revision TEXT, started REAL NOT NULL);
            CREATE TABLE results (run_id INTEGER NOT NULL REFERENCES runs(run_id), task TEXT NOT NULL, agent TEXT NOT
              NULL, seed INTEGER NOT NULL, final REAL NOT NULL, auc REAL NOT NULL, reference REAL, verdict TEXT NOT
              NULL, curve_json TEXT NOT NULL, PRIMARY KEY (run_id, task, agent, seed));
        """)
        con.execute("INSERT INTO runs VALUES (1, 'tiny', ?, '{}', '{}', NULL, 0.0)", (json.dumps(TINY),))
        con.execute("INSERT INTO results VALUES (1, 'st', 'random', 0, 0.5, 0.5, 1.0, 'converged', '[0.5]')")
    store = Store(db)
    row = {"seed": 0, "final": float("nan"), "auc": 0.1, "reference": 1.0, "verdict": "undecided", "curve": [0.1]}
    assert store.write_unit(1, "st", "greedy", [row])
    finals = {r["agent"]: r["final"] for r in store.results(1)}
    assert finals == {"random": 0.5, "greedy": None}


def test_a_pool_task_can_be_scored_by_the_gain_over_the_labeled_only_fit(tmp_path, capsys):
    suite = json.loads(json.dumps(TINY))
    suite["tasks"] = [dict(suite["tasks"][0], metric="test_accuracy_gain",
                           kwargs=dict(suite["tasks"][0]["kwargs"], label_temperature=0.3))]
    db = tmp_path / "gain.sqlite"
    assert main(["leaderboard", "run", "--suite", str(_write(tmp_path, suite)), "--db", str(db)]) == 0
    store = Store(db, readonly=True)
    results = store.results(store.latest_run())
    store.close()
    assert {r["agent"] for r in results} == {"random", "greedy"}
    for r in results:  # the curve is the gain: it starts near 0 and the reference is the all-labels fit's gain
        assert abs(r["curve"][0]) <= 0.5 and r["reference"] <= 1.0
