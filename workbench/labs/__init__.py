"""The bundled experiments (the labs), one module each, named like the experiment it registers (``lightsb.py`` registers
"lightsb"): ``workbench.get(name)`` imports only that module, ``workbench.experiments()`` imports them all."""
import importlib
import pkgutil


def import_all() -> None:
    """Import (and so register) every bundled experiment."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
