"""workbench: an interactive experiment workbench for modern ML methods.

    import workbench
    result = workbench.run("lightsb", dim=4, epsilon=0.5)
    result.metrics, result.model
"""
from workbench.experiment import (
    ConfigError,
    Event,
    Experiment,
    Result,
    configure,
    experiments,
    get,
    register,
)
from workbench.reporting import read_reports, report
from workbench.runner import configure_from_namespace, execute, progress_bar, run, run_notebook
from workbench.store import RunRecord, RunStore
from workbench.sweeps import sweep

__all__ = [
    "ConfigError", "Event", "Experiment", "Result", "RunRecord", "RunStore", "configure",
    "configure_from_namespace", "execute", "experiments", "get", "progress_bar", "read_reports",
    "register", "report", "run", "run_notebook", "sweep",
]
