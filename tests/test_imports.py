"""No import cycle among the package's modules.

The graph is read statically with ``ast`` from every module of ``workbench`` (``workbench.kernels`` included),
with the imports inside functions too (a lazy import that closes a cycle only moves the failure to run time)
and without those under ``if TYPE_CHECKING:`` or ``if __name__ == "__main__":`` (not run on import). ``from P import name`` is an edge to the module
``P.name`` when there is one, else to ``P``. Importing a module runs its parent packages' ``__init__`` too, but
that is no edge here: ``workbench/__init__.py`` re-exports the API, so every module would close a cycle through it.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGES = ("workbench", "workbench.kernels")


def module_files() -> dict[str, Path]:
    """{dotted module name: source file} of every module of :data:`PACKAGES` and their subpackages."""
    files = {}
    for package in PACKAGES:
        root = Path(importlib.util.find_spec(package).origin).parent
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            files.setdefault(name, path)  # workbench.kernels lives in kernels/, outside workbench/
    return files


NOT_RUN_ON_IMPORT = ("TYPE_CHECKING", "typing.TYPE_CHECKING", "__name__ == '__main__'")


def is_not_run_on_import(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` never runs; ``if __name__ == "__main__":`` runs in the module ``__main__`` that
    ``python -m`` makes of the file, not in the module others import."""
    return isinstance(node, ast.If) and ast.unparse(node.test) in NOT_RUN_ON_IMPORT


def imported_modules(tree: ast.Module, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The ``modules`` that ``module`` imports, at any depth (functions and classes included), relative imports
    resolved: ``import P.x`` gives ``P.x``; ``from P import x`` gives ``P.x`` when it is a module, else ``P``."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if is_not_run_on_import(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return (found & modules) - {module}


def import_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports}."""
    files = module_files()
    return {module: imported_modules(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py",
                                     set(files))
            for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search, sorted for a stable answer)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every descendant is explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_names_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b"}}) == ["b", "b"]


def test_imports_are_read_at_any_depth_with_relative_ones_resolved():
    source = '''
import p.b
from p import c, VALUE
from . import d
from .e import f
if TYPE_CHECKING:
    import p.typing_only
def later():
    from p.g import h
if __name__ == "__main__":
    import p.script_only
'''
    modules = {"p", "p.a", "p.b", "p.c", "p.d", "p.e", "p.g", "p.typing_only", "p.script_only"}
    assert imported_modules(ast.parse(source), "p.a", False, modules) == {"p", "p.b", "p.c", "p.d", "p.e", "p.g"}


# --- where the maths lives -------------------------------------------------------------------------------------

LAYERS_WITHOUT_MATHS = ("workbench.labs", "workbench.panels")
MODEL_BASES = ("Module", "nn.Module", "torch.nn.Module")
DATA_OR_BASELINE = ("make_", "load_", "sample_")  # names of functions that build a dataset
NUMERICAL_LIBRARIES = ("torch.linalg", "np.linalg", "numpy.linalg", "scipy", "sklearn")


def maths_defined_in(tree: ast.Module) -> list[str]:
    """What a module defines that belongs in ``workbench.methods``: a model (a class deriving from ``nn.Module``),
    a dataset (a function named ``make_*``, ``load_*`` or ``sample_*``), a baseline (a name with ``baseline``), or
    numerical linear algebra or learning (a use of torch.linalg, numpy.linalg, scipy or scikit-learn)."""
    found, inner = [], set()  # inner: the np.linalg of np.linalg.svd, already named with it
    for node in ast.walk(tree):  # breadth first: an attribute before the attributes inside it
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base) in MODEL_BASES for base in node.bases):
            found.append(f"model {node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (
                node.name.lstrip("_").startswith(DATA_OR_BASELINE) or "baseline" in node.name.lower()):
            found.append(f"dataset or baseline {node.name}")
        elif isinstance(node, ast.Attribute) and id(node) not in inner and ast.unparse(node).startswith(NUMERICAL_LIBRARIES):
            found.append(f"maths {ast.unparse(node)}")
            inner.update(id(part) for part in ast.walk(node.value))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"import {name}" for name in names if name.split(".")[0] in ("scipy", "sklearn")]
    return found


def test_labs_and_panels_define_no_dataset_model_baseline_or_maths():
    """README "Adding a method": the maths lives in workbench.methods; a lab only sets parameters, calls the method
    and reports, a panel only draws."""
    offences = {module: found for module, path in module_files().items() if module.startswith(LAYERS_WITHOUT_MATHS)
                and (found := maths_defined_in(ast.parse(path.read_text(), str(path))))}
    assert offences == {}


def test_the_maths_check_finds_models_datasets_baselines_and_linear_algebra():
    source = '''
import sklearn.cluster
class Net(nn.Module): ...
def make_moons(n): ...
def _load_digits_subset(n): ...
def cluster_baseline(X): ...
def draw(X):
    return np.linalg.svd(X)
'''
    assert maths_defined_in(ast.parse(source)) == [
        "import sklearn.cluster", "model Net", "dataset or baseline make_moons", "dataset or baseline _load_digits_subset",
        "dataset or baseline cluster_baseline", "maths np.linalg.svd"]
    assert maths_defined_in(ast.parse("def draw(fig, event):\n    fig.add_trace(event.payload['x'])")) == []
