"""The run store: an embedded SQLite database of every run.

Default location ``./runs/workbench.db``; the ``WORKBENCH_DB`` environment variable or the
CLI's ``--db`` option override it. WAL mode lets readers work while a writer writes; every
write is one short ``BEGIN IMMEDIATE`` transaction with a generous busy timeout, so several
processes can record runs at once without losing or corrupting any.

A run row holds: experiment, status (running/finished/failed/stopped), parameters, final
metrics, metric curves, seed, device, started/finished timestamps and duration, git commit
and dirty flag, package versions, notebook path, the error text of a failed run, the id of
the sweep it belongs to, and the process that records it (pid, host, the process's start
time) with its heartbeat. The ``sweeps`` table holds each sweep's id, experiment, spec and
creation time. A store written before a column existed is migrated in place when opened.

Runs survive their process. While a run reports, :class:`LiveRun` writes its curves and latest
metrics in batches (at most every ``FLUSH_SECONDS``), so a run killed mid-way keeps everything up
to its last report. A process beats every ``HEARTBEAT_SECONDS`` for the runs it has open. When
the store is read, a run still marked running whose process is gone reads as ``died``: on this
host, its pid no longer runs the process that started it (pid and start time are compared, so a
reused pid does not pass); on another host, where no process can be checked, its heartbeat is
older than ``STALE_SECONDS``. ``died`` is derived on reading, never stored: an old store needs
no change, and a run read as died stays recorded as running.
"""
from __future__ import annotations

import json
import math
import os
import platform
import socket
import sqlite3
import subprocess
import threading
import time
import warnings
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from workbench.experiment import current_metric_names

DEFAULT_DB = Path("runs") / "workbench.db"
TRACKED_PACKAGES = ("workbench", "torch", "numpy", "param", "panel", "papermill", "triton")

STATUSES_STORED = ("running", "finished", "failed", "stopped")  # the status column's CHECK constraint
STATUSES_FINAL = ("finished", "failed", "stopped")
STATUSES = (*STATUSES_STORED, "died")  # as read: a running run whose process is gone reads as died

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(map(repr, STATUSES_STORED))})),
    params TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{{}}',
    curves TEXT NOT NULL DEFAULT '{{}}',
    seed INTEGER,
    device TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    duration_s REAL,
    git_commit TEXT,
    git_dirty INTEGER,
    versions TEXT NOT NULL DEFAULT '{{}}',
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
MIGRATIONS = (("sweep_id", "TEXT"), ("pid", "INTEGER"), ("host", "TEXT"), ("process_start", "TEXT"),
              ("heartbeat", "REAL"))
JSON_COLUMNS = ("params", "metrics", "curves", "versions")
FLUSH_SECONDS = 2.0  # a LiveRun writes a running run's curves at most this often
HEARTBEAT_SECONDS = 30.0  # a process beats this often for the runs it has open
STALE_SECONDS = 300.0  # a run of another host whose heartbeat is older reads as died


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
    pid: int | None = None
    host: str | None = None
    process_start: str | None = None
    heartbeat: float | None = None


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


HOST = socket.gethostname()
_PROC = Path("/proc/self/stat").exists()  # Linux: a process's start time is in /proc/<pid>/stat


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_BOOT_ID = _boot_id()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as a token that no later process with the same pid has: on Linux the boot
    id and the start time in clock ticks (field 22 of /proc/<pid>/stat), elsewhere psutil's creation time.
    None when no such process runs, or when this system cannot tell (no /proc, no psutil)."""
    if _PROC:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()  # after "pid (comm)"
        except OSError:
            return None
        return f"{_BOOT_ID}:{fields[19]}"
    try:
        import psutil

        return f"psutil:{psutil.Process(pid).create_time()}"
    except Exception:  # no psutil, no such process, access denied
        return None


def died(status: str, pid: int | None, host: str | None, started: str | None, heartbeat: float | None) -> bool:
    """Whether a run recorded as ``status`` by process ``pid`` (started at ``started``, see
    :func:`process_start`) on ``host`` has lost its process: a running run of this host whose pid no longer
    runs that process, or one of another host (or whose process could not be identified) whose last
    ``heartbeat`` is older than STALE_SECONDS. A run recorded before pids were (no pid) never reads as died."""
    if status != "running" or pid is None:
        return False
    if host == HOST and started is not None:
        return process_start(pid) != started
    return heartbeat is not None and time.time() - heartbeat > STALE_SECONDS


class _Heartbeat:
    """One daemon thread per process that beats every HEARTBEAT_SECONDS for the runs this process has open,
    {store path: {run ids}}; a run leaves when it is closed. A store that cannot be written is tried again at
    the next beat."""

    def __init__(self):
        self.open: dict[Path, set[int]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, path: Path, run_id: int) -> None:
        with self.lock:
            self.open.setdefault(path, set()).add(run_id)
            if self.thread is None or not self.thread.is_alive():  # the first run, or a forked child's
                self.thread = threading.Thread(target=self._beat, name="workbench-heartbeat", daemon=True)
                self.thread.start()

    def discard(self, path: Path, run_ids) -> None:
        with self.lock:
            self.open.get(path, set()).difference_update(run_ids)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self.lock:
                beats = {path: sorted(ids) for path, ids in self.open.items() if ids}
            for path, ids in beats.items():
                try:  # mode=rw: a store deleted meanwhile is not created again
                    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=10)) as db:
                        with db:  # one transaction, committed
                            db.execute(f"UPDATE runs SET heartbeat = ? WHERE status = 'running' AND id IN "
                                       f"({', '.join('?' * len(ids))})", (time.time(), *ids))
                except sqlite3.Error:
                    continue


_HEARTBEAT = _Heartbeat()


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """Metrics for the JSON column: a non-finite value is stored as null (read back as NaN)."""
    return {k: v if v is not None and math.isfinite(v) else None for k, v in metrics.items()}


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
        """Insert a run with status 'running', recorded as this process's (pid, host, start time), which
        beats for it until it is closed; returns its id."""
        commit, dirty = git_state()
        now, pid = time.time(), os.getpid()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (experiment, status, params, seed, device, started_at, git_commit, git_dirty,"
                " versions, notebook, sweep_id, pid, host, process_start, heartbeat)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (experiment, json.dumps(params, default=str), seed, device, now, commit,
                 None if dirty is None else int(dirty), json.dumps(package_versions()), notebook, sweep_id,
                 pid, HOST, process_start(pid), now),
            )
            run_id = int(cursor.lastrowid)
        _HEARTBEAT.add(self.path, run_id)
        return run_id

    def update(self, run_id: int, metrics: dict[str, float], curves: dict[str, dict[str, list]]) -> None:
        """Write a running run's metrics and curves so far (and its heartbeat); a closed run is left as it is."""
        with self._write() as db:
            db.execute("UPDATE runs SET metrics = ?, curves = ?, heartbeat = ? WHERE id = ? AND status = 'running'",
                       (json.dumps(_finite(metrics)), json.dumps(curves), time.time(), run_id))

    def finish(self, run_id: int, status: str, metrics: dict[str, float] | None = None,
               curves: dict[str, dict[str, list]] | None = None, error: str | None = None,
               duration_s: float | None = None, params: dict[str, Any] | None = None) -> None:
        """Close a running run as finished, failed or stopped with its metrics and curves (and, when
        the run itself reported them, its final parameters); metrics or curves not given keep those
        written while it ran. A run that is already closed is never overwritten: ValueError.
        Non-finite metric values are stored as null and read back as NaN."""
        if status not in STATUSES_FINAL:
            raise ValueError(f"status {status!r} is not allowed; expected one of {', '.join(STATUSES_FINAL)}")
        now = time.time()
        with self._write() as db:
            started = db.execute("SELECT started_at, status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if started is None:
                raise KeyError(f"no run with id {run_id} in {self.path}")
            if started["status"] != "running":
                raise ValueError(f"run {run_id} is already {started['status']}; only a running run can be finished")
            db.execute(
                "UPDATE runs SET status = ?, metrics = COALESCE(?, metrics), curves = COALESCE(?, curves), error = ?,"
                " finished_at = ?, duration_s = ? WHERE id = ?",
                (status, None if metrics is None else json.dumps(_finite(metrics)),
                 None if curves is None else json.dumps(curves), error, now,
                 duration_s if duration_s is not None else now - started["started_at"], run_id),
            )
            if params is not None:
                db.execute("UPDATE runs SET params = ? WHERE id = ?", (json.dumps(params, default=str), run_id))
        _HEARTBEAT.discard(self.path, [run_id])

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
        run_ids, now = list(run_ids), time.time()
        with self._write() as db:
            for run_id in run_ids:
                db.execute("UPDATE runs SET status = ?, error = ?, finished_at = ?, duration_s = ? - started_at"
                           " WHERE id = ? AND status = 'running'", (status, error, now, now, run_id))
        _HEARTBEAT.discard(self.path, run_ids)

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


class LiveRun:
    """A running run's curves and latest metrics, written to the store while it reports them, in batches: at
    the first report, then whenever ``every`` seconds have passed since the last write, and at :meth:`flush`.
    A run killed mid-way keeps everything up to its last write.

        live = LiveRun(store, run_id)
        live.add(step, {"loss": 0.3})             # a progress event: points appended to the curves
        live.report(metrics, curves)              # a notebook's report: merged in, later values winning
        live.flush()                              # before closing the run as failed or stopped

    A write that fails (the store busy beyond its timeout) warns and is tried again at the next report."""

    def __init__(self, store: RunStore, run_id: int, every: float = FLUSH_SECONDS):
        self.store, self.run_id, self.every = store, run_id, every
        self.metrics: dict[str, float] = {}
        self.curves: dict[str, dict[str, list]] = {}
        self.written = -math.inf  # time.monotonic() of the last write
        self.dirty = False

    def add(self, step: int, values: dict[str, float]) -> None:
        """The ``values`` reported at ``step``: a point of each one's curve, and its latest value as its metric."""
        for name, value in values.items():
            curve = self.curves.setdefault(name, {"step": [], "value": []})
            curve["step"].append(int(step))
            curve["value"].append(float(value))
            self.metrics[name] = float(value)
        self._changed()

    def report(self, metrics: dict[str, float], curves: dict[str, dict[str, list]]) -> None:
        """Final metrics and whole curves reported at once (a notebook's ``workbench.report``)."""
        self.metrics.update(metrics)
        self.curves.update(curves)
        self._changed()

    def _changed(self) -> None:
        self.dirty = True
        if time.monotonic() - self.written >= self.every:
            self.flush()

    def flush(self) -> None:
        """Write what was reported since the last write, now."""
        if not self.dirty:
            return
        try:
            self.store.update(self.run_id, self.metrics, self.curves)
        except sqlite3.Error as error:
            warnings.warn(f"run {self.run_id}: progress not yet written to {self.store.path} ({error}); "
                          f"trying again at the next report", RuntimeWarning, stacklevel=2)
            return
        self.dirty, self.written = False, time.monotonic()


def _to_record(row: sqlite3.Row) -> RunRecord:
    values = dict(row)
    if died(values["status"], values["pid"], values["host"], values["process_start"], values["heartbeat"]):
        values["status"] = "died"
    for column in JSON_COLUMNS:
        values[column] = json.loads(values[column]) if values[column] else {}
    values["metrics"] = {k: math.nan if v is None else v for k, v in values["metrics"].items()}
    for column in ("metrics", "curves"):
        values[column] = current_metric_names(values["experiment"], values[column])
    if values["git_dirty"] is not None:
        values["git_dirty"] = bool(values["git_dirty"])
    return RunRecord(**values)
