import os
import threading
import time
from pathlib import Path

import torch

# Triton kernels run through its interpreter on a machine without CUDA: the variable must be set before
# any kernel is decorated, i.e. before workbench.kernels is imported (conftest is imported first, in each
# xdist worker too).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import triton_interpreter  # noqa: E402  its float32 arithmetic made a GPU's (see the module)

    triton_interpreter.fix()

# One torch thread in every test process: `make test` runs two workers on two cores, and the tests' small models and
# matrices on two threads beside a busy process run up to 10x slower (test_lightsb's Gaussian-plan fit took 25 s
# instead of 1.7 s while test_spd_geometry ran on the other worker)
torch.set_num_threads(1)

import param  # noqa: E402
import pytest  # noqa: E402

from workbench.experiment import Event, Experiment, Result, register  # noqa: E402


@register
class Countdown(Experiment):
    """A toy experiment for protocol tests: gradient descent on f(x) = a x^2 / 2 from x = 1."""

    name = param.String("toy_countdown", constant=True)
    steps = param.Integer(50, bounds=(1, 100_000), doc="Gradient steps.")
    lr = param.Number(0.1, bounds=(0, 1), inclusive_bounds=(False, True), doc="Step size.")
    curvature = param.Number(1.0, bounds=(0, None), inclusive_bounds=(False, True), doc="a in f = a x^2 / 2.")
    mode = param.Selector(default="plain", objects=["plain", "fail"], doc="'fail' raises at the middle step.")
    delay = param.Number(0.0, bounds=(0, 1), doc="Seconds to sleep per step (to test Stop).")

    def run(self, progress, stop: threading.Event) -> Result:
        x = 1.0
        for step in range(1, self.steps + 1):
            if stop.is_set():
                break
            if self.mode == "fail" and step == self.steps // 2:
                raise RuntimeError("toy failure")
            x -= self.lr * self.curvature * x
            progress(Event(step, self.steps, {"loss": 0.5 * self.curvature * x * x}, payload={"x": x}))
            time.sleep(self.delay)
        return Result(metrics={"x": x, "steps_done": step}, artifacts={"model": x})


# They share the notebooks executed at the test settings (``executed_at_overrides``): started first, one on each
# worker, each executes a notebook the other is not running (the book from the end of the list), and neither waits.
SHARING_FIRST = ("test_book.py", "test_notebooks_papermill.py")


def estimated_seconds(item) -> float:
    """A rough cost of a test on a 2-core machine, to order the files (the measured ones: 1-3 s an nbval cell of a
    method notebook, 2-5 s a breakage, 5-15 s a browser test, a few seconds a test marked slow)."""
    if item.path.suffix == ".ipynb":
        return 2.0
    for marker, seconds in (("browser", 8.0), ("notebook", 3.0), ("slow", 2.0)):
        if item.get_closest_marker(marker):
            return seconds
    return 0.05


def pytest_collection_modifyitems(items):
    """Mark every notebook execution (nbval's cells of notebooks/, the ``notebook`` tests) and every browser test
    ``slow`` (``pytest -m "not slow"`` is the development loop), and order the files longest first."""
    for item in items:
        if item.get_closest_marker("notebook") or item.get_closest_marker("browser") or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
    # `make test` (--dist loadfile --no-loadscope-reorder) hands whole files to its two workers in this order: the two
    # sharing files, then the longest first, so that the many quick files at the end even out the two workers; a
    # stable sort keeps every file's own order
    cost: dict = {}
    for item in items:
        cost[item.path] = cost.get(item.path, 0.0) + estimated_seconds(item)
    first = {name: rank for rank, name in enumerate(SHARING_FIRST)}
    items.sort(key=lambda item: (first.get(item.path.name, len(first)), -cost[item.path]))


@pytest.fixture(scope="session")
def kernels():
    """Jupyter kernels forked from one preloaded process, as sweeps get theirs (workbench.warm_kernels): a notebook
    test pays for its notebook, not again for starting Python and importing torch, workbench and the experiment."""
    from workbench.sweeps import SINGLE_THREAD
    from workbench.warm_kernels import WarmKernels

    pool = WarmKernels(ahead=1, env={**os.environ, **SINGLE_THREAD})
    yield pool
    pool.close()


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def move_kernel(km, folder: Path) -> None:
    """Make ``folder`` the working directory of the kernel of ``km``, binding no name in its namespace."""
    client = km.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        reply = client.execute_interactive(f"__import__('os').chdir({str(folder)!r})", silent=True,
                                           store_history=False, timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()


@pytest.fixture
def warm_kernel(kernels):
    """``warm_kernel(name)``: the kernel manager of a fresh kernel forked for experiment ``name``, for papermill's
    or run_notebook's ``km``, working in notebooks/ as `workbench notebook`'s kernels do (a notebook may read its
    data/ there); the kernel is closed after the test."""
    taken = []

    def take(name: str):
        taken.append(kernels.take(name, later=1))
        move_kernel(taken[-1].km, NOTEBOOKS)
        return taken[-1].km

    yield take
    for kernel in taken:
        kernels.release(kernel)


@pytest.fixture(scope="session")
def executed_at_overrides(tmp_path_factory, kernels):
    """``executed_at_overrides(name)``: notebooks/<name>.ipynb run once in the test session at the small settings
    ``notebook_cases.OVERRIDES[name]``, through `workbench notebook`'s run_notebook on a forked kernel working in
    notebooks/, recorded in a store of its own. The workers share it (a lock per notebook in the session's common
    temporary folder): the papermill test checks the run, the book test makes its chapters from it. Returns the
    store's path and the run's id (the run's ``notebook`` is the executed copy)."""
    from filelock import FileLock, Timeout
    from notebook_cases import OVERRIDES

    from workbench.runner import run_notebook
    from workbench.store import RunStore

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "executed-at-overrides"
    shared.mkdir(exist_ok=True)

    def execute(name: str, wait: bool = True) -> tuple[Path, int] | None:
        """(store, run id) of the shared run of ``name``, run now if no worker has; None, with ``wait=False``, while
        another worker is running it."""
        folder, store = shared / name, shared / name / "runs.db"
        lock = FileLock(str(shared / f"{name}.lock"))
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return None
        try:
            if not (folder / "run_id").exists():  # a failed run leaves none: the next test runs it again and fails
                kernel = kernels.take(name, later=0)
                try:
                    move_kernel(kernel.km, NOTEBOOKS)
                    run_id = run_notebook(name, OVERRIDES[name], output_dir=folder, store=RunStore(store),
                                          km=kernel.km)[2]
                finally:
                    kernels.release(kernel)
                (folder / "run_id").write_text(str(run_id))
        finally:
            lock.release()
        return store, int((folder / "run_id").read_text())

    return execute


@pytest.fixture
def store(tmp_path):
    from workbench.store import RunStore

    return RunStore(tmp_path / "runs.db")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright (skips, saying how to install it, when missing)."""
    from support import CHROMIUM, CHROMIUM_ARGS, chromium_or_skip

    sync_api = chromium_or_skip()
    # expect() waits 5 s by default: on a busy 2-core machine a run's last evaluation or a kernel's first import takes
    # longer (the pages' own actions wait up to their set_default_timeout, 60 s in these tests)
    sync_api.expect.set_options(timeout=60_000)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
