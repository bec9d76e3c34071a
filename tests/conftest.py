import os
import threading
import time

import torch

# Triton kernels run through its interpreter on a machine without CUDA: the variable must be set before
# any kernel is decorated, i.e. before workbench.kernels is imported (conftest is imported first, in each
# xdist worker too).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import triton_interpreter  # noqa: E402  its float32 arithmetic made a GPU's (see the module)

    triton_interpreter.fix()

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models and matrices: one thread is as fast, and two threads on a busy 2-core CPU can be 10x slower.
    A module uses it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def store(tmp_path):
    from workbench.store import RunStore

    return RunStore(tmp_path / "runs.db")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright (skips, saying how to install it, when missing)."""
    from support import CHROMIUM, CHROMIUM_ARGS, chromium_or_skip

    sync_api = chromium_or_skip()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
