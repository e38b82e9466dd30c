"""The results store: an embedded SQLite database of leaderboard runs.

Tables: ``runs`` (one row per ``leaderboard run``: suite, its full definition, settings, package versions, git
revision, start time) and ``results`` (one row per (run, task, agent, seed): the final metric, the area under the
learning curve, the convergence verdict and the per-step curve as JSON). A unit (task, agent, all its seeds) is
written in one transaction, so an interrupted run leaves only whole units behind and ``--resume`` redoes exactly the
missing ones; the primary key forbids duplicates.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    suite TEXT NOT NULL,
    suite_json TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    git_revision TEXT,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    task TEXT NOT NULL,
    agent TEXT NOT NULL,
    seed INTEGER NOT NULL,
    final REAL NOT NULL,
    auc REAL NOT NULL,
    reference REAL,
    verdict TEXT NOT NULL,
    curve_json TEXT NOT NULL,
    PRIMARY KEY (run_id, task, agent, seed)
);
"""


def versions() -> dict[str, str]:
    import gymnasium
    import numpy
    import torch

    import reciprocal_gym

    return {"reciprocal_gym": reciprocal_gym.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "numpy": numpy.__version__}


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Store:
    """A leaderboard results database at ``path`` (created with its parent folder if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def start_run(self, suite: dict[str, Any], settings: dict[str, Any], resume: bool) -> int:
        """The run to write into: with ``resume``, the latest run of the same suite definition and settings."""
        suite_json = json.dumps(suite, sort_keys=True)
        settings_json = json.dumps(settings, sort_keys=True)
        if resume:
            row = self.db.execute(
                "SELECT run_id FROM runs WHERE suite = ? AND suite_json = ? AND settings_json = ? "
                "ORDER BY run_id DESC LIMIT 1", (suite["name"], suite_json, settings_json)).fetchone()
            if row is not None:
                return int(row[0])
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (suite, suite_json, settings_json, versions_json, git_revision, started) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (suite["name"], suite_json, settings_json, json.dumps(versions()), git_revision(), time.time()))
        return int(cur.lastrowid)

    def done_units(self, run_id: int) -> set[tuple[str, str]]:
        rows = self.db.execute("SELECT DISTINCT task, agent FROM results WHERE run_id = ?", (run_id,))
        return {(task, agent) for task, agent in rows}

    def write_unit(self, run_id: int, task: str, agent: str, rows: list[dict[str, Any]]) -> None:
        """All seeds of one (task, agent) unit, in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT INTO results (run_id, task, agent, seed, final, auc, reference, verdict, curve_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, task, agent, r["seed"], r["final"], r["auc"], r.get("reference"), r["verdict"],
                  json.dumps(r["curve"])) for r in rows])

    def latest_run(self, suite: str | None = None) -> int | None:
        query = "SELECT run_id FROM runs" + (" WHERE suite = ?" if suite else "") + " ORDER BY run_id DESC LIMIT 1"
        row = self.db.execute(query, (suite,) if suite else ()).fetchone()
        return None if row is None else int(row[0])

    def run_info(self, run_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT suite, suite_json, settings_json, versions_json, git_revision, started "
                              "FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise ValueError(f"run {run_id} is not in {self.path}")
        return {"run_id": run_id, "suite": row[0], "suite_def": json.loads(row[1]), "settings": json.loads(row[2]),
                "versions": json.loads(row[3]), "git_revision": row[4], "started": row[5]}

    def results(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT task, agent, seed, final, auc, reference, verdict, curve_json FROM results "
                               "WHERE run_id = ? ORDER BY task, agent, seed", (run_id,))
        return [{"task": t, "agent": a, "seed": s, "final": f, "auc": u, "reference": r, "verdict": v,
                 "curve": json.loads(c)} for t, a, s, f, u, r, v, c in rows]
