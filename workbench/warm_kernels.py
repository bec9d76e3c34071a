"""Jupyter kernels started ahead of the sweep points that use them: one fresh kernel per point.

Starting a kernel takes seconds: a Python process, ipykernel, torch (and ``torch._dynamo``, which torch's
optimizers import on their first step), workbench and the experiment's module. A sweep point must still get a
kernel of its own, so that nothing passes from one point to the next. :class:`WarmKernels` makes that cheap
twice over:

- its kernels are forked from one process that imported all of that once (:mod:`workbench.kernel_factory`),
  so a kernel costs only ipykernel's own start-up;
- it starts each kernel before its point needs it, while earlier points run. The modules come inherited, not
  imported by the notebook, so the notebook still starts from an empty namespace.

Each kernel lives in a temporary folder of its own, ``workbench-point-*`` (its working directory, its connection
file and IPC sockets, its output log), and in a session of its own, so :meth:`Kernel.kill` ends it with every
process it started. A kernel whose factory ends (the sweep's process died) ends itself.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import uuid
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync

from workbench.kernel_factory import ForkProvisioner, KernelFactory

SOCKET_PATH_LIMIT = 100  # bytes of a Unix socket's path: sun_path holds 103 on macOS, 107 on Linux


def _point_folder() -> Path:
    """A new temporary folder for a kernel, under /tmp when the temporary directory's path is too long for the
    kernel's IPC sockets (``<folder>/ipc-<n>``)."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-point-"))
    if len(os.fsencode(folder / "ipc-99")) > SOCKET_PATH_LIMIT:
        folder.rmdir()
        folder = Path(tempfile.mkdtemp(prefix="workbench-point-", dir="/tmp"))
    return folder


class _PointKernelManager(AsyncKernelManager):
    """A kernel manager that keeps the clients it makes, to stop them with the kernel: papermill leaves its
    client running (its sockets, its heartbeat thread) when the kernel manager is not its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.clients = []

    def client(self, **kwargs):
        client = super().client(**kwargs)
        self.clients.append(client)
        return client


class Kernel:
    """One kernel, forked by ``factory`` and started (not necessarily ready) for experiment ``name``: ``km`` is
    its kernel manager (an ``AsyncKernelManager``) for papermill: ``execute_notebook(..., km=kernel.km)``."""

    def __init__(self, name: str, env: dict[str, str], factory: KernelFactory):
        self.name = name
        self.folder = _point_folder()
        self.log = self.folder / "kernel.log"
        self.km = _PointKernelManager(kernel_name="python3", transport="ipc", ip=str(self.folder / "ipc"),
                                      connection_file=str(self.folder / "kernel.json"), kernel_id=str(uuid.uuid4()))
        self.km.provisioner = ForkProvisioner(factory, name, str(self.log), kernel_id=self.km.kernel_id,
                                              kernel_spec=self.km.kernel_spec, parent=self.km)
        try:
            run_sync(self.km.start_kernel)(cwd=str(self.folder), env=env)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.process = self.km.provisioner.process  # the leader of the kernel's session

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """End the kernel and the processes it started, at once; safe from any thread."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Kill the kernel, wait for it, stop its clients and remove its folder."""
        self.kill()
        self.process.wait()
        for client in self.km.clients:
            client.stop_channels()
        run_sync(self.km.cleanup_resources)()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of what the kernel printed outside the notebook (its stdout and stderr)."""
        try:
            return self.log.read_text(errors="replace")[-chars:].strip()
        except FileNotFoundError:
            return ""


class WarmKernels:
    """Kernels started ahead for the points to come, at most ``ahead`` unused at a time.

    ``take(name, later)`` hands out a kernel for experiment ``name`` (started on the spot when none is) and
    leaves ``min(ahead, later)`` started for the next points, ``later`` being how many points may still follow;
    ``start(name, count)`` starts ``count`` before any is taken. A kernel is handed out once, and
    ``release(kernel)`` closes it after its point. ``close()`` closes the unused kernels, kills
    the ones handed out (their points fail at once) and refuses any further ``take``.
    """

    def __init__(self, ahead: int, env: dict[str, str] | None = None):
        self.ahead = ahead
        self.env = dict(os.environ if env is None else env)
        self.unused: list[Kernel] = []
        self.in_use: set[Kernel] = set()
        self.closed = False
        self.lock = threading.Lock()
        self.factory: KernelFactory | None = None  # started with the first kernel

    def start(self, name: str, count: int) -> None:
        with self.lock:
            self._top_up(name, count)

    def take(self, name: str, later: int) -> Kernel:
        with self.lock:
            if self.closed:
                raise RuntimeError("the kernels are closed: the sweep is stopping")
            self._top_up(name, 1 + min(self.ahead, later))
            kernel = self.unused.pop(0)  # the oldest: the likeliest to be ready
            self.in_use.add(kernel)
        return kernel

    def release(self, kernel: Kernel) -> None:
        with self.lock:
            self.in_use.discard(kernel)
        kernel.close()

    def _top_up(self, name: str, count: int) -> None:
        """Close the unused kernels of other experiments and the dead ones; start ``name``'s up to ``count``."""
        for kernel in [k for k in self.unused if k.name != name or not k.alive()]:
            self.unused.remove(kernel)
            kernel.close()
        if self.factory is None:
            self.factory = KernelFactory(self.env)
        while len(self.unused) < count:
            self.unused.append(Kernel(name, self.env, self.factory))

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for kernel in self.in_use:
                kernel.kill()
            for kernel in self.unused:
                kernel.close()
            self.unused.clear()
            if self.factory is not None:
                self.factory.close()
