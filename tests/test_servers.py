"""Servers the package starts listen on 127.0.0.1 unless asked otherwise: the served panel, JupyterLab through
`make lab` (as root too) and the sweeps' Dask LocalCluster. Listening sockets are read from /proc/net/tcp(6).
The served apps are reached through the URL they print, with its token."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import free_port, served, stop_process, wait_http
from workbench.panels.serve import is_loopback

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc/net/tcp(6) write them


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp and tcp6) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.parametrize("address, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                               ("0.0.0.0", False), ("::", False), ("192.168.1.5", False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) == loopback


SERVERS = {"panel": [sys.executable, "-m", "workbench.panels.serve", "lightsb"],
           "app": [sys.executable, "-m", "workbench.cli", "serve"]}


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.slow
def test_served_apps_listen_on_loopback_only(server_name, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    with served(SERVERS[server_name] + ["--port", str(port)], tmp_path, log, WORKBENCH_DB=str(tmp_path / "runs.db")):
        assert listening_addresses(port) and listening_addresses(port) <= LOOPBACK_HEX, listening_addresses(port)
    assert "warning" not in log.read_text()


def test_the_app_warns_when_asked_to_listen_beyond_loopback(tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    with served(SERVERS["app"] + ["--port", str(port), "--address", "0.0.0.0"], tmp_path, log,
                WORKBENCH_DB=str(tmp_path / "runs.db")) as (_, url):
        assert listening_addresses(port) == {"00000000"}  # 0.0.0.0, as asked
        assert "?token=" in url  # beyond loopback, a token is a must (tests/test_serve_token.py)
    assert "warning: listening on 0.0.0.0, beyond this machine" in log.read_text()


@pytest.mark.slow
def test_make_lab_starts_jupyterlab_on_loopback_as_root_too(tmp_path):
    command = subprocess.run(["make", "-s", "--no-print-directory", "lab-command"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "--ip=127.0.0.1" in command and ("--allow-root" in command) == (os.getuid() == 0)
    port = free_port()
    lab = subprocess.Popen(command + ["--no-browser", f"--port={port}", "--IdentityProvider.token=workbench-test",
                                      "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           cwd=ROOT, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        status = wait_http(f"http://127.0.0.1:{port}/api/status", lab, {"Authorization": "token workbench-test"})
        assert b"started" in status
        assert listening_addresses(port) and listening_addresses(port) <= LOOPBACK_HEX, listening_addresses(port)
    finally:
        stop_process(lab)


def test_the_sweeps_local_dask_cluster_listens_on_loopback_only():
    from workbench.sweeps import _DaskExecutor

    with _DaskExecutor(1) as executor:
        address = executor.client.scheduler.address  # tcp://127.0.0.1:PORT
        assert address.startswith("tcp://127.0.0.1:")
        assert listening_addresses(int(address.rsplit(":", 1)[1])) <= LOOPBACK_HEX
