"""Papermill's nbclient engine, saving the notebook it executes at most every few seconds.

Papermill writes the executed notebook to its output path as every cell starts and again as it ends, so that the
file follows the run. A method notebook's import cell shows Panel's JavaScript inline
(``pn.extension("plotly", inline=True)``: about 16 MB of JSON), and each write of it costs about 60 ms of CPU: a
second before a notebook's first check, several seconds over a whole notebook, on a core the run itself needs.

:class:`ThrottledSaves` writes at the start, after a cell when ``SAVE_EVERY`` seconds have passed since the last
write, and at the end, whatever ends the run (papermill then writes the final notebook itself, with its error if a
cell failed). The file on disk follows the run at most ``SAVE_EVERY`` seconds late at a cell's boundary; within a
long cell papermill's own autosave (every 30 s of output) still applies. ``run_notebook`` executes with it
(``engine_name=ENGINE``).
"""
from __future__ import annotations

import time

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE = "workbench"
SAVE_EVERY = 5.0  # seconds


class ThrottledSaves(NotebookExecutionManager):
    """Papermill's execution manager, its writes at most every ``SAVE_EVERY`` seconds but the first and last."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written_at: float | None = None  # time.monotonic() of the last write; None: none yet

    def save(self, **kwargs) -> None:
        now = time.monotonic()
        if self.written_at is None or now - self.written_at >= SAVE_EVERY:
            super().save(**kwargs)
            self.written_at = now

    def notebook_complete(self, **kwargs) -> None:
        self.written_at = None  # the last write is never skipped
        super().notebook_complete(**kwargs)


class ThrottledSavesEngine(NBClientEngine):
    """nbclient's engine with :class:`ThrottledSaves` as its manager (papermill's ``Engine.execute_notebook``,
    its manager's class the only change)."""

    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, **kwargs):
        manager = ThrottledSaves(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                 autosave_cell_every=autosave_cell_every)
        manager.notebook_start()
        try:
            cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
        finally:
            manager.cleanup_pbar()
            manager.notebook_complete()
        return manager.nb


papermill_engines.register(ENGINE, ThrottledSavesEngine)
