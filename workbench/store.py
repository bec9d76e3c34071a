"""The run store: an embedded SQLite database of every run.

Default location ``./runs/workbench.db``; the ``WORKBENCH_DB`` environment variable or the
CLI's ``--db`` option override it. WAL mode lets readers work while a writer writes; every
write is one short ``BEGIN IMMEDIATE`` transaction with a generous busy timeout, so several
processes can record runs at once without losing or corrupting any.

A run row holds: experiment, status (running/finished/failed/stopped), parameters, final
metrics, metric curves, seed, device, started/finished timestamps and duration, git commit
and dirty flag, package versions, notebook path, the error text of a failed run and the id of
the sweep it belongs to. The ``sweeps`` table holds each sweep's id, experiment, spec and
creation time. A store written before a column existed is migrated in place when opened.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

DEFAULT_DB = Path("runs") / "workbench.db"
TRACKED_PACKAGES = ("workbench", "torch", "numpy", "param", "panel", "papermill", "triton")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'stopped')),
    params TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    curves TEXT NOT NULL DEFAULT '{}',
    seed INTEGER,
    device TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    duration_s REAL,
    git_commit TEXT,
    git_dirty INTEGER,
    versions TEXT NOT NULL DEFAULT '{}',
    notebook TEXT,
    error TEXT,
    sweep_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL
);
"""
# Columns added after a store's first release: (name, SQL type). A store file written before one of them
# existed gets it in place (ALTER TABLE ADD COLUMN keeps every row) the first time it is opened.
MIGRATIONS = (("sweep_id", "TEXT"),)
JSON_COLUMNS = ("params", "metrics", "curves", "versions")


@dataclass
class RunRecord:
    id: int
    experiment: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    seed: int | None = None
    device: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    duration_s: float | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    notebook: str | None = None
    error: str | None = None
    sweep_id: str | None = None


def default_path() -> Path:
    return Path(os.environ.get("WORKBENCH_DB", DEFAULT_DB))


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository that holds this package, or (None, None) outside git."""
    where = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


class RunStore:
    """Record, list and load runs in one SQLite file."""

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_path()
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        with self._write() as db:
            columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            for name, kind in MIGRATIONS:
                if name not in columns:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            db.execute("CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep_id)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # --- writing ---------------------------------------------------------------------------------

    def start(self, experiment: str, params: dict[str, Any], seed: int | None = None,
              device: str | None = None, notebook: str | None = None, sweep_id: str | None = None) -> int:
        """Insert a run with status 'running'; returns its id."""
        commit, dirty = git_state()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (experiment, status, params, seed, device, started_at, git_commit, git_dirty,"
                " versions, notebook, sweep_id) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (experiment, json.dumps(params, default=str), seed, device, time.time(), commit,
                 None if dirty is None else int(dirty), json.dumps(package_versions()), notebook, sweep_id),
            )
            return int(cursor.lastrowid)

    def finish(self, run_id: int, status: str, metrics: dict[str, float] | None = None,
               curves: dict[str, dict[str, list]] | None = None, error: str | None = None,
               duration_s: float | None = None, params: dict[str, Any] | None = None) -> None:
        """Close a running run as finished, failed or stopped with its metrics and curves (and, when
        the run itself reported them, its final parameters). A run that is already closed is never
        overwritten: ValueError. Non-finite metric values are stored as null and read back as NaN."""
        if status not in STATUSES_FINAL:
            raise ValueError(f"status {status!r} is not allowed; expected one of {', '.join(STATUSES_FINAL)}")
        now = time.time()
        with self._write() as db:
            started = db.execute("SELECT started_at, status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if started is None:
                raise KeyError(f"no run with id {run_id} in {self.path}")
            if started["status"] != "running":
                raise ValueError(f"run {run_id} is already {started['status']}; only a running run can be finished")
            finite = {k: v if v is not None and math.isfinite(v) else None for k, v in (metrics or {}).items()}
            db.execute(
                "UPDATE runs SET status = ?, metrics = ?, curves = ?, error = ?, finished_at = ?, duration_s = ?"
                " WHERE id = ?",
                (status, json.dumps(finite), json.dumps(curves or {}), error, now,
                 duration_s if duration_s is not None else now - started["started_at"], run_id),
            )
            if params is not None:
                db.execute("UPDATE runs SET params = ? WHERE id = ?", (json.dumps(params, default=str), run_id))

    def record(self, experiment: str, params: dict[str, Any], status: str, metrics: dict[str, float] | None = None,
               curves: dict[str, dict[str, list]] | None = None, seed: int | None = None, device: str | None = None,
               duration_s: float | None = None, notebook: str | None = None, error: str | None = None,
               sweep_id: str | None = None) -> int:
        """Record a whole run at once (start + finish); returns its id."""
        run_id = self.start(experiment, params, seed=seed, device=device, notebook=notebook, sweep_id=sweep_id)
        self.finish(run_id, status, metrics=metrics, curves=curves, error=error, duration_s=duration_s)
        return run_id

    # --- reading ---------------------------------------------------------------------------------

    def load(self, run_id: int) -> RunRecord:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id} in {self.path}")
        return _to_record(row)

    def list(self, experiment: str | None = None, sweep_id: str | None = None) -> list[RunRecord]:
        """Runs in id order, of one experiment and/or one sweep when given."""
        conditions = [(column, value) for column, value in (("experiment", experiment), ("sweep_id", sweep_id))
                      if value is not None]
        query = "SELECT * FROM runs" + "".join(f"{' WHERE' if i == 0 else ' AND'} {column} = ?"
                                               for i, (column, _) in enumerate(conditions))
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id", [value for _, value in conditions]).fetchall()
        return [_to_record(row) for row in rows]

    # --- sweeps ----------------------------------------------------------------------------------

    def add_sweep(self, sweep_id: str, experiment: str, spec: dict[str, Any]) -> bool:
        """Record a sweep (id, experiment, its spec) unless it exists; True when it is new."""
        with self._write() as db:
            cursor = db.execute("INSERT OR IGNORE INTO sweeps (id, experiment, spec, created) VALUES (?, ?, ?, ?)",
                                (sweep_id, experiment, json.dumps(spec, sort_keys=True), time.time()))
            return cursor.rowcount == 1

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """{id, experiment, spec, created} of a recorded sweep; KeyError when there is none."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise KeyError(f"no sweep with id {sweep_id!r} in {self.path}")
        return {**dict(row), "spec": json.loads(row["spec"])}

    def close_running(self, run_ids, status: str = "stopped", error: str | None = None) -> None:
        """Close those of ``run_ids`` still running (e.g. a sweep's runs in flight at Ctrl-C)."""
        now = time.time()
        with self._write() as db:
            for run_id in run_ids:
                db.execute("UPDATE runs SET status = ?, error = ?, finished_at = ?, duration_s = ? - started_at"
                           " WHERE id = ? AND status = 'running'", (status, error, now, now, run_id))

    def dataframe(self, experiment: str | None = None, sweep_id: str | None = None):
        """One row per run: id, experiment, status, duration, then ``param.*`` and ``metric.*`` columns."""
        import pandas as pd

        rows = []
        for run in self.list(experiment, sweep_id):
            row = {"id": run.id, "experiment": run.experiment, "status": run.status, "sweep_id": run.sweep_id,
                   "started": pd.Timestamp(run.started_at, unit="s"), "duration_s": run.duration_s,
                   "seed": run.seed, "device": run.device, "git_commit": run.git_commit, "git_dirty": run.git_dirty}
            row.update({f"param.{k}": v for k, v in run.params.items()})
            row.update({f"metric.{k}": v for k, v in run.metrics.items()})
            rows.append(row)
        return pd.DataFrame(rows)


STATUSES_FINAL = ("finished", "failed", "stopped")


def _to_record(row: sqlite3.Row) -> RunRecord:
    values = dict(row)
    for column in JSON_COLUMNS:
        values[column] = json.loads(values[column]) if values[column] else {}
    values["metrics"] = {k: math.nan if v is None else v for k, v in values["metrics"].items()}
    if values["git_dirty"] is not None:
        values["git_dirty"] = bool(values["git_dirty"])
    return RunRecord(**values)
