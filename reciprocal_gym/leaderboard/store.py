"""The results store: an embedded SQLite database of leaderboard runs.

Tables: ``runs`` (one row per ``leaderboard run``: suite, its full definition, settings, package versions, git
revision, start time), ``results`` (one row per (run, task, agent, seed): the final metric, the area under the
learning curve, the convergence verdict and the per-step curve as JSON; a metric that is not a finite number is
stored as NULL and shown as missing) and ``claims`` (which process is running which unit). A unit (task, agent, all
its seeds) is written in one transaction, so an interrupted run leaves only whole units behind and ``--resume``
redoes exactly the missing ones.

Several processes may use one database at once: SQLite's locking serializes the writes (a writer waits up to
``timeout`` seconds for another's transaction), and a process claims a unit before running it, so concurrent
``--resume`` runs share the missing units instead of computing (and inserting) the same one twice. A claim whose
process has died is taken over. Every database problem (a directory or a file that is not SQLite, a corrupted or
read-only file, a lock held too long) is a :class:`StoreError` that names the path and says what to do.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    final REAL,
    auc REAL,
    reference REAL,
    verdict TEXT NOT NULL,
    curve_json TEXT NOT NULL,
    PRIMARY KEY (run_id, task, agent, seed)
);
CREATE TABLE IF NOT EXISTS claims (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    agent TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed REAL NOT NULL,
    PRIMARY KEY (run_id, task, agent)
);
"""
STALE_CLAIM_S = 6 * 3600.0  # a claim of another machine is trusted this long


class StoreError(ValueError):
    """The results database cannot be used; the message names the path and the reason."""


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _alive(host: str, pid: int, claimed: float) -> bool:
    """Whether the process that claimed a unit may still be running it."""
    if host != socket.gethostname():
        return time.time() - claimed < STALE_CLAIM_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



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
    """A leaderboard results database at ``path`` (created with its parent folder if missing, unless ``readonly``).

    ``timeout``: seconds a write waits for another process's transaction before giving up with a StoreError."""

    def __init__(self, path: str | Path, readonly: bool = False, timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.db: sqlite3.Connection | None = None
        if self.path.is_dir():
            raise StoreError(f"--db {self.path} is a directory; give a file path such as "
                             f"{self.path / 'leaderboard.sqlite'}")
        if readonly and not self.path.is_file():
            raise StoreError(f"no results store at {self.path}; run `reciprocal-gym leaderboard run` first")
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"--db {self.path}: its folder cannot be created ({exc.strerror})") from exc
        with self._guard("open"):
            uri = f"{self.path.resolve().as_uri()}?mode=ro" if readonly else str(self.path)
            self.db = sqlite3.connect(uri, uri=readonly, timeout=timeout)
            if readonly:
                self.db.execute("SELECT count(*) FROM runs").fetchone()
            else:
                self.db.executescript(SCHEMA)
                self._migrate()
            self.db.execute("SELECT run_id, task, agent, seed, final FROM results LIMIT 1").fetchall()
            for table, needed in (("runs", ("run_id", "suite", "suite_json", "settings_json")),
                                  ("results", ("run_id", "task", "agent", "seed", "final", "curve_json"))):
                have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
                if not set(needed) <= have:
                    self.db.close()
                    raise StoreError(f"--db {self.path} cannot be used: it is an SQLite database but not a "
                                     f"leaderboard store (its table {table!r} lacks {sorted(set(needed) - have)}); "
                                     "give another path")

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn SQLite's errors into a StoreError in plain words."""
        try:
            yield
        except sqlite3.Error as exc:
            text = str(exc)
            if "not a database" in text or "malformed" in text:
                why = "it is not a readable SQLite database (corrupted, or another kind of file); give another path"
            elif "readonly" in text or "read-only" in text:
                why = "it is read-only; give a writable path (or fix its permissions)"
            elif "locked" in text or "busy" in text:
                why = ("another process held the database locked for too long; wait for it to finish, or use "
                       "another --db")
            elif "no such table" in text:
                why = "it is an SQLite database but not a leaderboard store; give another path"
            elif "unable to open" in text:
                why = "it cannot be opened (missing folder or no permission)"
            else:
                why = f"SQLite said: {text}"
            if self.db is not None and doing == "open":
                self.db.close()
            raise StoreError(f"--db {self.path} cannot be used ({doing}): {why}") from exc

    def _migrate(self) -> None:
        """Stores written before missing metrics were allowed declared final / auc NOT NULL: relax that."""
        columns = {row[1]: row[3] for row in self.db.execute("PRAGMA table_info(results)")}
        if columns.get("final") or columns.get("auc"):
            with self.db:
                self.db.execute("ALTER TABLE results RENAME TO results_old")
                self.db.executescript(SCHEMA)
                self.db.execute("INSERT INTO results SELECT * FROM results_old")
                self.db.execute("DROP TABLE results_old")

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def start_run(self, suite: dict[str, Any], settings: dict[str, Any], resume: bool) -> int:
        """The run to write into: with ``resume``, the latest run of the same suite definition and settings."""
        suite_json = json.dumps(suite, sort_keys=True)
        settings_json = json.dumps(settings, sort_keys=True)
        if resume:
            with self._guard("find the run to resume"):
                row = self.db.execute(
                    "SELECT run_id FROM runs WHERE suite = ? AND suite_json = ? AND settings_json = ? "
                    "ORDER BY run_id DESC LIMIT 1", (suite["name"], suite_json, settings_json)).fetchone()
            if row is not None:
                return int(row[0])
        with self._guard("start a run"), self.db:
            cur = self.db.execute(
                "INSERT INTO runs (suite, suite_json, settings_json, versions_json, git_revision, started) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (suite["name"], suite_json, settings_json, json.dumps(versions()), git_revision(), time.time()))
        return int(cur.lastrowid)

    def done_units(self, run_id: int) -> set[tuple[str, str]]:
        with self._guard("read the run's units"):
            rows = self.db.execute("SELECT DISTINCT task, agent FROM results WHERE run_id = ?", (run_id,)).fetchall()
        return {(task, agent) for task, agent in rows}

    def claim_unit(self, run_id: int, task: str, agent: str) -> str | int:
        """Claim a unit for this process: ``"run"`` (claimed: run it), ``"done"`` (already stored), or the pid of
        the live process that holds it (run by someone else; wait for it)."""
        with self._guard("claim a unit"), self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if self.db.execute("SELECT 1 FROM results WHERE run_id = ? AND task = ? AND agent = ? LIMIT 1",
                               (run_id, task, agent)).fetchone():
                return "done"
            row = self.db.execute("SELECT host, pid, claimed FROM claims WHERE run_id = ? AND task = ? AND agent = ?",
                                  (run_id, task, agent)).fetchone()
            me = (socket.gethostname(), os.getpid())
            if row is not None and (row[0], row[1]) != me and _alive(*row):
                return int(row[1])
            self.db.execute("INSERT OR REPLACE INTO claims (run_id, task, agent, host, pid, claimed) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (run_id, task, agent, *me, time.time()))
        return "run"

    def write_unit(self, run_id: int, task: str, agent: str, rows: list[dict[str, Any]]) -> bool:
        """All seeds of one (task, agent) unit, in one transaction; False (nothing written) if another process
        stored the unit first. Metrics that are not finite numbers are stored as NULL (missing)."""
        with self._guard("write a unit"), self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if self.db.execute("SELECT 1 FROM results WHERE run_id = ? AND task = ? AND agent = ? LIMIT 1",
                               (run_id, task, agent)).fetchone():
                return False
            self.db.executemany(
                "INSERT INTO results (run_id, task, agent, seed, final, auc, reference, verdict, curve_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, task, agent, r["seed"], _finite_or_none(r["final"]), _finite_or_none(r["auc"]),
                  _finite_or_none(r.get("reference")), r["verdict"],
                  json.dumps([_finite_or_none(v) for v in r["curve"]])) for r in rows])
            self.db.execute("DELETE FROM claims WHERE run_id = ? AND task = ? AND agent = ?", (run_id, task, agent))
        return True

    def latest_run(self, suite: str | None = None) -> int | None:
        query = "SELECT run_id FROM runs" + (" WHERE suite = ?" if suite else "") + " ORDER BY run_id DESC LIMIT 1"
        with self._guard("find the latest run"):
            row = self.db.execute(query, (suite,) if suite else ()).fetchone()
        return None if row is None else int(row[0])

    def run_info(self, run_id: int) -> dict[str, Any]:
        """The run's settings, and ``units`` / ``missing_units``: the (task, agent) units its suite defines and
        those not (yet) stored (a run that stopped early, or one still running)."""
        from reciprocal_gym.leaderboard.run import units

        with self._guard("read a run"):
            row = self.db.execute("SELECT suite, suite_json, settings_json, versions_json, git_revision, started "
                                  "FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} is not in {self.path}")
        suite_def = json.loads(row[1])
        expected = [(task["name"], agent) for task, agent in units(suite_def)]
        done = self.done_units(run_id)
        return {"run_id": run_id, "suite": row[0], "suite_def": suite_def, "settings": json.loads(row[2]),
                "versions": json.loads(row[3]), "git_revision": row[4], "started": row[5],
                "units": len(expected), "missing_units": [u for u in expected if u not in done]}

    def results(self, run_id: int) -> list[dict[str, Any]]:
        with self._guard("read results"):
            rows = self.db.execute("SELECT task, agent, seed, final, auc, reference, verdict, curve_json FROM "
                                   "results WHERE run_id = ? ORDER BY task, agent, seed", (run_id,)).fetchall()
        return [{"task": t, "agent": a, "seed": s, "final": f, "auc": u, "reference": r, "verdict": v,
                 "curve": json.loads(c)} for t, a, s, f, u, r, v, c in rows]
