"""Helpers of the tests that start servers (served panels, the app, JupyterLab, Dask) and browse them."""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip():
    """Debian's chromium is a system package (make test installs it when root): skip, saying how, without it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) or run make test as root")
    import playwright.sync_api

    return playwright.sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def wait_http(url: str, process: subprocess.Popen, headers: dict | None = None, timeout: float = 120,
              log: Path | None = None) -> bytes:
    """The body of ``url`` once it answers 200; fails early, with the log's tail, if ``process`` exits."""
    deadline = time.monotonic() + timeout
    tail = lambda: log.read_text()[-3000:] if log is not None else ""  # noqa: E731
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[:4]} exited with {process.returncode}:\n{tail()}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
                if response.status == 200:
                    return response.read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s:\n{tail()}")


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


SERVING = re.compile(r"^serving .+ at (http://\S+)", re.MULTILINE)  # the line a served app prints


def printed_url(process: subprocess.Popen, log: Path, timeout: float = 120) -> str:
    """The URL (with its ``?token=``) that a served app wrote to ``log``; fails early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := SERVING.search(log.read_text()):
            return match.group(1)
        if process.poll() is not None:
            raise AssertionError(f"{process.args[:4]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no URL printed in {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def served(command: list[str], cwd: Path, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run a served app (``workbench serve``, ``python -m workbench.panels.serve``), its output to ``log``;
    yields (the process, the URL it printed) once that URL answers 200, and stops the process on leaving."""
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(**env))
    try:
        url = printed_url(process, log)
        wait_http(url, process, log=log)
        yield process, url
    finally:
        stop_process(process)


# The runs table of the store's first release (before the sweep_id, pid, host, process_start and heartbeat
# columns): the migration tests write a store with it and open it with today's RunStore.
FIRST_RUNS_TABLE = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'stopped')), params TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}', curves TEXT NOT NULL DEFAULT '{}', seed INTEGER, device TEXT,
    started_at REAL NOT NULL, finished_at REAL, duration_s REAL, git_commit TEXT, git_dirty INTEGER,
    versions TEXT NOT NULL DEFAULT '{}', notebook TEXT, error TEXT);
"""
