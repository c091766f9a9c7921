"""The import graph of ``mempamal/`` follows the layer order of docs/architecture.md.

Every ``import`` and ``from ... import`` statement counts, including those
inside functions (lazy imports are still real dependencies).  A module may
import its own layer and the layers below it, never one above; and no two
modules import each other, directly or through others.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mempamal"

# Top to bottom; a module belongs to the first layer whose prefixes match it.
LAYERS = [
    ("skins", ["mempamal.jupyter", "mempamal.cli", "mempamal.demo", "mempamal.__main__"]),
    # The package itself is only a table of lazy public names (importlib strings).
    ("api", ["mempamal", "mempamal.experiment", "mempamal.validation", "mempamal.validation_build",
             "mempamal.fingerprint", "mempamal.workflow", "mempamal.results", "mempamal.display",
             "mempamal.display_graph", "mempamal.display_grid", "mempamal.display_html", "mempamal.run"]),
    ("graph", ["mempamal.graph", "mempamal.submissions"]),
    ("backends", ["mempamal.backends"]),
    ("engine", ["mempamal.engine"]),
    ("store", ["mempamal.store", "mempamal.integrity", "mempamal.lock", "mempamal.tasktable", "mempamal.taskfile",
               "mempamal.doneindex", "mempamal._version"]),
    # Every private scikit-learn name, for every layer; imports no mempamal module.
    ("compat", ["mempamal._sklearn_compat"]),
]
FRONTEND_PACKAGES = ("IPython", "ipywidgets", "ipykernel")
# What a skin may import besides other skins: the api as a user sees it.  No
# validation/fingerprint/display_graph..., no graph, backend, engine or store.
SKIN_MAY_IMPORT = ("mempamal", "mempamal.experiment", "mempamal.workflow", "mempamal.results",
                   "mempamal.display", "mempamal.run")
# The one exception: %mempamal cluster start uses LocalCluster, a private
# ipyparallel cluster that has no api-layer counterpart (DESIGN.md fixes the
# public names, and it is not among them).
SKIN_EXCEPTIONS = {("mempamal.jupyter.magics", "mempamal.backends.ipyparallel")}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module):
    for rank, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # "mempamal" alone names the root; the others match their submodules too.
            if module == prefix or (prefix != "mempamal" and module.startswith(prefix + ".")):
                return rank, name
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")


def all_modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module, path, known):
    """``(line, imported module)`` for every import of ``mempamal`` modules in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found, external = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (found if alias.name.split(".")[0] == "mempamal" else external).append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target.split(".")[0] != "mempamal":
                external.append((node.lineno, target))
                continue
            for alias in node.names:
                # `from . import store` imports a module; `from .store import X` imports from one.
                candidate = f"{target}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else target))
    return found, external


@pytest.fixture(scope="module")
def graph():
    modules = all_modules()
    edges = {}
    for module, path in modules.items():
        found, external = imports_of(module, path, modules)
        edges[module] = {"internal": found, "external": external}
    return modules, edges


def test_every_module_has_a_layer(graph):
    modules, _ = graph
    for module in modules:
        layer_of(module)


def test_imports_only_go_down_the_layers(graph):
    modules, edges = graph
    upward = []
    for module, found in edges.items():
        rank, name = layer_of(module)
        for line, target in found["internal"]:
            target_rank, target_name = layer_of(target)
            if target_rank < rank:
                upward.append(f"{modules[module].relative_to(PACKAGE.parent)}:{line} ({name}) imports "
                              f"{target} ({target_name})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles(graph):
    _, edges = graph
    neighbours = {m: {t for _, t in found["internal"] if t != m and t in edges} for m, found in edges.items()}
    # Packages import nothing at module level except lazily; an edge to a
    # package's __init__ is only an edge to that file.
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        stack.append(module)
        for target in sorted(neighbours[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[module] = "closed"

    for module in sorted(neighbours):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def skin_violations(module, found):
    """The imports of skin ``module`` that reach past the public api."""
    return [(line, target) for line, target in found
            if layer_of(target)[1] != "skins" and target not in SKIN_MAY_IMPORT
            and (module, target) not in SKIN_EXCEPTIONS]


def test_skins_use_only_the_public_api(graph):
    modules, edges = graph
    offenders = [
        f"{modules[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for module, found in edges.items() if layer_of(module)[1] == "skins"
        for line, target in skin_violations(module, found["internal"])
    ]
    assert not offenders, "skins must call the public api only:\n" + "\n".join(offenders)


def test_the_skin_check_sees_an_internal_import(tmp_path):
    """A skin reading workdir files through the store, or a display helper module, is reported."""
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from ..store import read_json\n    from ..display_graph import new_axes\n"
                    "    from ..display import folds_html\n    from . import static\n")
    found, _ = imports_of("mempamal.jupyter.bad", fake, all_modules())
    assert [target for _, target in skin_violations("mempamal.jupyter.bad", found)] == [
        "mempamal.store", "mempamal.display_graph"]


def test_only_the_jupyter_skin_imports_ipython_or_widgets(graph):
    modules, edges = graph
    offenders = [
        f"{modules[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for module, found in edges.items() if not module.startswith("mempamal.jupyter")
        for line, target in found["external"] if target.split(".")[0] in FRONTEND_PACKAGES
    ]
    assert not offenders, "\n".join(offenders)


def test_the_layer_test_sees_a_planted_upward_import(tmp_path):
    """The checker itself can fail: a lazy engine import of the api is found and ranked upward."""
    fake = tmp_path / "bad.py"
    fake.write_text("import os\n\ndef f():\n    from ..workflow import Workflow\n    from . import tasks\n")
    found, external = imports_of("mempamal.engine.bad", fake, all_modules())
    assert [target for _, target in found] == ["mempamal.workflow", "mempamal.engine.tasks"]
    assert [target for _, target in external] == ["os"]
    assert layer_of("mempamal.workflow")[0] < layer_of("mempamal.engine.bad")[0]
