"""The experiment protocol: validation, execution, curves, status, registry."""
import math
import threading

import pytest

import workbench
from workbench.experiment import ConfigError, configure, describe_allowed, get


def test_closed_form_iterate_and_curves():
    result = workbench.run("toy_countdown", steps=20, lr=0.25, curvature=2.0)
    # x_k = (1 - lr a)^k: gradient descent on a x^2 / 2 contracts by a constant factor
    assert result.metrics["x"] == pytest.approx(0.5 ** 20, rel=1e-12)
    assert result.status == "finished"
    assert result.curves["loss"]["step"] == list(range(1, 21))
    assert result.curves["loss"]["value"][-1] == pytest.approx(0.5 * 2.0 * 0.25 ** 20)
    assert result.model == result.metrics["x"]  # artifacts are attributes
    with pytest.raises(AttributeError, match="artifacts"):
        result.nosuch


@pytest.mark.parametrize("key, value, fragment", [
    ("lr", -1, "'lr' = -1 is not allowed; expected a number in (0, 1]"),
    ("lr", "abc", "'lr' = 'abc'"),
    ("steps", "1.5", "'steps' = '1.5' is not allowed; expected an integer in [1, 100000]"),
    ("mode", "nosuch", "expected one of 'plain', 'fail'"),
    ("curvature", "nan", "'curvature' = 'nan'"),
])
def test_bad_values_name_parameter_value_and_allowed(key, value, fragment):
    with pytest.raises(ConfigError) as error:
        configure("toy_countdown", **{key: value})
    assert fragment in str(error.value)


def test_unknown_parameter_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown parameter 'nosuch'; valid names: curvature, delay, device, lr"):
        configure("toy_countdown", nosuch=1)
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; available: .*toy_countdown"):
        get("nope")


def test_strings_are_coerced_like_cli_values():
    experiment = configure("toy_countdown", steps="30", lr="0.5", mode="fail", seed="3")
    assert (experiment.steps, experiment.lr, experiment.mode, experiment.seed) == (30, 0.5, "fail", 3)
    assert isinstance(experiment.steps, int)


def test_stop_flag_ends_the_run_and_sets_status():
    stop = threading.Event()
    seen = []

    def progress(event):
        seen.append(event.step)
        if event.step == 7:
            stop.set()

    result = workbench.run("toy_countdown", steps=1000, progress=progress, stop=stop)
    assert result.status == "stopped"
    assert seen == list(range(1, 8))


def test_allowed_description_of_half_open_bounds():
    spec = get("toy_countdown").param
    assert describe_allowed(spec.curvature) == "a number in (0, inf)"
    assert describe_allowed(spec.device) == "one of 'auto', 'cpu', 'cuda'"


def test_seed_makes_runs_reproducible():
    import torch

    from workbench.experiment import seed_everything

    seed_everything(5)
    a = torch.randn(3)
    seed_everything(5)
    assert torch.equal(a, torch.randn(3))
    assert not math.isnan(a.sum().item())


def test_list_parameters_parse_comma_separated_cli_values():
    experiment = configure("optimizers", optimizers="adamw, lion")
    assert experiment.optimizers == ["adamw", "lion"]
    with pytest.raises(ConfigError, match="'optimizers' = 'adamw,nosuch' is not allowed; expected a comma-separated list"):
        configure("optimizers", optimizers="adamw,nosuch")


def test_get_imports_only_the_experiment_asked_for_and_experiments_lists_them_all():
    """A fresh process running one experiment does not import the others (SPD's geoopt, MLC's scikit-learn ...),
    and workbench.experiments() lists them all (the bundled ones live in the package workbench.labs)."""
    import subprocess
    import sys

    code = ("import sys, workbench; workbench.get('lightsb'); "
            "print(sorted(m for m in sys.modules if m.startswith('workbench.labs.'))); "
            "print(callable(workbench.experiments), 'spd_normalization' in workbench.experiments())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines() == ["['workbench.labs.lightsb']", "True True"]


def test_one_thread_on_cpu_sets_one_thread_inside_and_restores_the_count_after():
    import torch

    from workbench.experiment import one_thread_on_cpu

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread_on_cpu(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with one_thread_on_cpu(torch.device("meta")):  # not a CPU: left alone
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_thread_on_cpu(torch.device("cpu")):
            raise RuntimeError("restored on the way out of an error too")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
