"""Jupyter kernels forked from one process that has already imported what they need.

Starting a kernel from scratch costs about 2 s of CPU: Python, ipykernel, torch (with ``torch._dynamo``),
workbench and the experiment's module, and the Panel and Plotly its notebook imports. A sweep pays that for every
point, since each point gets a fresh kernel, and on a busy machine those seconds compete with the points that run.
A :class:`KernelFactory` pays it once: its process imports everything, then forks one child per kernel. Each child
becomes an ordinary ipykernel process, with its own pid, session, working directory, environment and output log,
that finds the modules already in memory (shared copy-on-write), so it costs only the kernel's own start-up.

The factory stays single-threaded and never runs torch code, so a fork inherits no thread, lock, OpenMP pool or
CUDA context (it refuses to fork if an import initialised CUDA).
It reads requests from its stdin, one JSON line each, and answers on its stdout:

    {"op": "fork", "name": ..., "argv": [...], "cwd": ..., "env": {...}, "log": ...}  ->  {"pid": ...}
    {"op": "poll", "pid": ...}                                                       ->  {"status": null | int}

It reaps a kernel only when asked (``poll``), so a kernel's pid stays reserved until this process has seen it
end, as with a child process of its own. When its stdin closes (the sweep ends, or the process that started it
dies) it kills the kernels it has not reaped and exits; a kernel also ends itself when the factory is gone
(ipykernel's parent poller).

:class:`ForkProvisioner` is the jupyter_client provisioner that takes its kernel process from a factory instead
of starting ``python -m ipykernel_launcher``; the connection file, IPC sockets and papermill's client are
jupyter_client's as before. Unix only (``os.fork``).
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from jupyter_client.provisioning import LocalProvisioner

LAUNCHER = "ipykernel_launcher"  # the module a kernel spec's argv runs; what follows it is the kernel's argv


class KernelFactory:
    """The driver's side: starts the factory process and asks it for kernels; safe from any thread."""

    def __init__(self, env: dict[str, str]):
        self.lock = threading.Lock()
        self.closed = False
        self.process = subprocess.Popen([sys.executable, "-m", "workbench.kernel_factory"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)

    def _ask(self, request: dict) -> dict:
        with self.lock:
            if self.closed:
                raise RuntimeError("the kernel factory is closed")
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the kernel factory ended (exit status {self.process.wait()})")
        answer = json.loads(answer)
        if "error" in answer:
            raise RuntimeError(f"the kernel factory failed: {answer['error']}")
        return answer

    def fork(self, name: str, argv: list[str], cwd: str, env: dict[str, str], log: str) -> "ForkedKernel":
        """A new kernel process for experiment ``name``, running ipykernel with ``argv`` (after the launcher)."""
        pid = self._ask({"op": "fork", "name": name, "argv": argv, "cwd": cwd, "env": env, "log": log})["pid"]
        return ForkedKernel(self, pid)

    def close(self) -> None:
        """End the factory and every kernel it has not reaped."""
        with self.lock:
            self.closed = True
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()


class ForkedKernel:
    """The part of ``subprocess.Popen`` that jupyter_client and the sweeps use, for a kernel that is the
    factory's child: its end is asked of the factory."""

    stdin = stdout = stderr = None

    def __init__(self, factory: KernelFactory, pid: int):
        self.factory = factory
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.factory._ask({"op": "poll", "pid": self.pid})["status"]
            except (OSError, RuntimeError):  # the factory is gone, and its kernels with it
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):
    """A local provisioner whose kernel process is forked by ``factory`` for experiment ``name``, its output
    going to the file ``output``. Give it to the kernel manager before ``start_kernel``."""

    def __init__(self, factory: KernelFactory, name: str, output: str, **kwargs):
        super().__init__(**kwargs)
        self.factory, self.name, self.output = factory, name, output

    async def launch_kernel(self, cmd: list[str], **kwargs):
        argv = cmd[cmd.index(LAUNCHER) + 1:] if LAUNCHER in cmd else cmd[1:]
        self.cwd = kwargs["cwd"]
        self.process = self.factory.fork(self.name, argv, self.cwd, dict(kwargs["env"]), self.output)
        self.pid = self.pgid = self.process.pid  # the kernel leads a session of its own
        return self.connection_info


# ---- the factory process -------------------------------------------------------------------------------------

def _become_kernel(request: dict, factory_pid: int) -> list[str]:
    """In a fresh fork: take the kernel's session, folder, environment and log; return ipykernel's argv. Never
    raises (the factory's loop is still on the stack): a failure ends the process."""
    try:
        os.setsid()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # off the factory's request pipe
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], JPY_PARENT_PID=str(factory_pid))
        sys.argv = [importlib.util.find_spec(LAUNCHER).origin, *request["argv"]]  # as the launcher sees them
        import numpy
        numpy.random.seed()  # a fresh process's entropy, not the factory's state
        return [*request["argv"], f"--IPKernelApp.parent_handle={factory_pid}"]
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _run_kernel(argv: list[str]) -> None:
    """ipykernel's launcher, in a forked kernel; never returns."""
    from ipykernel.kernelapp import IPKernelApp
    status = 1
    try:
        IPKernelApp.launch_instance(argv=argv)
        status = 0
    except SystemExit as exit:
        status = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


# what every method notebook imports beside its experiment: Panel for its panel, Plotly for its figures (0.6 s)
NOTEBOOK_IMPORTS = ("panel", "plotly.graph_objects", "plotly.subplots")


def warm_up(name: str) -> None:
    """Import what every run of experiment ``name`` imports, and what its notebook imports."""
    importlib.import_module("torch._dynamo")  # imported by torch's optimizers on their first step
    importlib.import_module("workbench").get(name)  # workbench, then the experiment's module
    for module in NOTEBOOK_IMPORTS:
        importlib.import_module(module)


def _fork(request: dict, kernels: set[int]) -> int:
    """Fork a kernel for the request: its pid here, 0 in the kernel."""
    warm_up(request["name"])  # the experiment's module, imported once
    if sys.modules["torch"].cuda.is_initialized():  # a fork cannot use its parent's CUDA context
        raise RuntimeError(f"importing experiment {request['name']!r} initialised CUDA; it must do so at run time")
    sys.stdout.flush()
    gc.freeze()  # the objects so far are the kernels' too: their collections must not touch (and copy) them
    pid = os.fork()
    if pid:
        kernels.add(pid)
    return pid


def _poll(pid: int, kernels: set[int]) -> dict:
    """The kernel's exit status once it has ended (and is reaped), else None."""
    if pid not in kernels:
        raise ValueError(f"{pid} is not a kernel of this factory, or was reaped already")
    done, status = os.waitpid(pid, os.WNOHANG)
    if not done:
        return {"status": None}
    kernels.discard(pid)
    return {"status": os.waitstatus_to_exitcode(status)}


def _serve() -> list[str] | None:
    """The factory's loop: fork kernels and report their ends until stdin closes (then None). In a forked kernel
    it returns that kernel's argv instead, so that ipykernel runs about as deep in the stack as under its own
    launcher (one frame deeper). Python 3.11 frees and re-maps its frame stack's 16 KiB chunks whenever calls
    go back and forth across a chunk's end, so where the kernel's frames start matters: launched from inside this
    loop, three frames deeper, the lightsb notebook's first Plotly display faulted in 75 000 pages (1.6 s of
    CPU), against 11 000 (0.7 s) from here and 8 000 (0.7 s) in a kernel started by its launcher."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it closes us
    if sys.path and os.path.abspath(sys.path[0]) == os.getcwd():
        del sys.path[0]  # as ipykernel_launcher does: a kernel's path gains its own folder, not ours
    import ipykernel.kernelapp  # noqa: F401  (imported once here, for every kernel)
    replies, kernels = sys.stdout.buffer, set()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            if request["op"] == "fork":
                pid = _fork(request, kernels)
                if pid == 0:
                    return _become_kernel(request, os.getppid())
                answer = {"pid": pid}
            else:
                answer = _poll(request["pid"], kernels)
        except Exception as error:  # e.g. an experiment that does not import: the driver raises it
            answer = {"error": f"{type(error).__name__}: {error}"}
        replies.write(json.dumps(answer).encode() + b"\n")
        replies.flush()
    for pid in kernels:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


if __name__ == "__main__":
    kernel_argv = _serve()  # returns a list only in a forked kernel
    if kernel_argv is not None:
        _run_kernel(kernel_argv)
