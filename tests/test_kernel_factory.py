"""Kernels forked from a preloaded process (workbench.kernel_factory): each is a fresh kernel of its own, and none
outlives the factory or the process that started it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient

from workbench.kernel_factory import KernelFactory
from workbench.sweeps import SINGLE_THREAD
from workbench.warm_kernels import Kernel

REPORT = ("names_before = sorted(globals())\nimport json, os, sys, numpy\n"
          "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'sid': os.getsid(0), 'cwd': os.getcwd(),\n"
          "    'tag': os.environ.get('POINT_TAG'), 'torch': 'torch' in sys.modules, 'panel': 'panel' in sys.modules,\n"
          "    'draw': numpy.random.rand(),\n"
          "    'names': [n for n in names_before if not n.startswith('_')]}))")


def ask(kernel: Kernel, code: str) -> dict:
    """Run ``code`` in ``kernel``; what it printed, as JSON."""
    client = BlockingKernelClient(connection_file=str(kernel.folder / "kernel.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        printed = []
        client.execute_interactive(code, timeout=60, output_hook=lambda msg: printed.append(
            msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        return json.loads("".join(printed))
    finally:
        client.stop_channels()


def gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` ends within ``within`` seconds (a zombie has ended: an orphan waits for init)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def factory():
    factory = KernelFactory({**os.environ, **SINGLE_THREAD})
    yield factory
    factory.close()


@pytest.mark.slow
def test_each_forked_kernel_is_a_fresh_process_of_its_own(factory):
    kernels = [Kernel("lightsb", {**os.environ, **SINGLE_THREAD, "POINT_TAG": tag}, factory) for tag in "ab"]
    try:
        seen = [ask(kernel, REPORT) for kernel in kernels]
        for kernel, tag, kernel_seen in zip(kernels, "ab", seen):
            assert kernel_seen["pid"] == kernel.process.pid != os.getpid()
            assert kernel_seen["ppid"] == factory.process.pid  # forked by the factory...
            assert kernel_seen["sid"] == kernel_seen["pid"]  # ...into a session of its own, to be killed as one
            assert kernel_seen["cwd"] == str(kernel.folder) and kernel_seen["tag"] == tag  # its folder and env
            assert kernel_seen["torch"] and kernel_seen["panel"]  # inherited, already imported
            assert kernel_seen["names"] == ["In", "Out", "exit", "get_ipython", "open", "quit"]  # nothing bound
        assert seen[0]["draw"] != seen[1]["draw"]  # numpy's global state reseeded, as in a new process
    finally:
        for kernel in kernels:
            kernel.close()
    assert all(not kernel.alive() for kernel in kernels)


@pytest.mark.slow
def test_the_exit_status_of_a_kernel_and_a_factory_that_cannot_fork(factory):
    kernel = Kernel("lightsb", {**os.environ, **SINGLE_THREAD}, factory)
    try:
        client = BlockingKernelClient(connection_file=str(kernel.folder / "kernel.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        client.execute("import os; os._exit(3)")
        assert kernel.process.wait(timeout=30) == 3
        client.stop_channels()
    finally:
        kernel.close()
    with pytest.raises(RuntimeError, match="the kernel factory failed: .*no_such_experiment"):
        factory.fork("no_such_experiment", [], "/", dict(os.environ), os.devnull)


DRIVER = """
import os, sys, time
from workbench.kernel_factory import KernelFactory
from workbench.warm_kernels import Kernel
factory = KernelFactory(dict(os.environ))
kernel = Kernel("lightsb", dict(os.environ), factory)
print(factory.process.pid, kernel.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("end", ["close", "driver killed"])
@pytest.mark.slow
def test_no_kernel_outlives_its_factory_or_its_driver(factory, end):
    if end == "close":
        kernel = Kernel("lightsb", {**os.environ, **SINGLE_THREAD}, factory)
        pids = [factory.process.pid, kernel.process.pid]
        factory.close()
    else:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **SINGLE_THREAD})
        pids = [int(pid) for pid in driver.stdout.readline().split()]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert all(gone(pid, within=10) for pid in pids)


@pytest.mark.slow
def test_a_long_temporary_directory_does_not_break_the_kernels_sockets(factory, tmp_path, monkeypatch):
    long = tmp_path / ("x" * 60) / ("y" * 60)
    long.mkdir(parents=True)
    monkeypatch.setattr("tempfile.tempdir", str(long))
    kernel = Kernel("lightsb", {**os.environ, **SINGLE_THREAD}, factory)
    try:
        assert kernel.folder.parent == Path("/tmp")  # the sockets' paths would not fit under TMPDIR
        assert ask(kernel, "import json, os\nprint(json.dumps({'pid': os.getpid()}))") == {"pid": kernel.process.pid}
    finally:
        kernel.close()
