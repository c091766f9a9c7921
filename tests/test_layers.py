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

# Top to bottom.  A module's layer is the one of its package (the folder it
# sits in under mempamal/); the package's own modules at the root of
# mempamal/ are the api, except the few named in ROOT_MODULES.
LAYER_ORDER = ["door", "skins", "api", "graph", "backends", "engine", "store", "base"]
PACKAGE_LAYERS = {
    "jupyter": "skins",
    "display": "api",
    "validation": "api",
    "graph": "graph",
    "backends": "backends",
    "engine": "engine",
    "store": "store",
}
ROOT_MODULES = {
    # `import mempamal` is the door: a table of lazy names from every layer
    # (importlib strings, followed by ``door_edges``), which only skins enter.
    "mempamal": "door",
    "mempamal.cli": "skins",
    "mempamal.demo": "skins",
    "mempamal.__main__": "skins",
    # The docstring examples' namespace: a user of the public api, as a skin is.
    "mempamal.conftest": "skins",
    # Leaves every layer may use: they import nothing of mempamal.
    "mempamal.exceptions": "base",
    "mempamal._constraints": "base",
    "mempamal._version": "base",
    "mempamal._sklearn_compat": "base",
}
FRONTEND_PACKAGES = ("IPython", "ipywidgets", "ipykernel")
# What a skin may import besides other skins: the api as a user sees it.  No
# validation/fingerprint/display.graph..., no graph, backend, engine or store.
SKIN_MAY_IMPORT = ("mempamal", "mempamal.experiment", "mempamal.workflow", "mempamal.results", "mempamal.description",
                   "mempamal.display", "mempamal.run", "mempamal.exceptions", "mempamal.model_comparison")
# The one exception: %mempamal cluster start uses LocalCluster, a private
# ipyparallel cluster that has no api-layer counterpart (DESIGN.md fixes the
# public names, and it is not among them).
SKIN_EXCEPTIONS = {("mempamal.jupyter.magics", "mempamal.backends.ipyparallel")}
# The door's names that live in a skin: IPython's `%load_ext mempamal` looks
# its hooks up on the package itself.
DOOR_SKIN_NAMES = {"load_ipython_extension", "unload_ipython_extension"}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module):
    """``(rank, name)`` of ``module``'s layer: its package's, or ROOT_MODULES' for the root."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in PACKAGE_LAYERS):
        if parts[1] not in PACKAGE_LAYERS:
            raise AssertionError(f"{module}: package mempamal.{parts[1]} has no layer: add it to PACKAGE_LAYERS "
                                 "and to docs/architecture.md")
        name = PACKAGE_LAYERS[parts[1]]
    else:
        name = ROOT_MODULES.get(module, "api")
    return LAYER_ORDER.index(name), name


def door_edges():
    """``(line, module)`` for every lazy export of ``mempamal/__init__.py`` (its ``_EXPORTS`` strings)."""
    path = PACKAGE / "__init__.py"
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return [(value.lineno, key.value, value.value) for key, value in zip(node.value.keys, node.value.values)]
    raise AssertionError("mempamal/__init__.py has no _EXPORTS table")


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
    # The door's lazy names are imports too: it reaches each target module.
    edges["mempamal"]["internal"] += [(line, target) for line, _, target in door_edges()]
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
            if name == "skins" and target_name == "door":
                continue  # `import mempamal as mp`: a skin calls the public api by its names
            if target_rank < rank:
                upward.append(f"{modules[module].relative_to(PACKAGE.parent)}:{line} ({name}) imports "
                              f"{target} ({target_name})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles(graph):
    _, edges = graph
    # Entering the door is a lazy name lookup (its table imports on first
    # use), never an import-time loop: edges into "mempamal" are left out.
    neighbours = {m: {t for _, t in found["internal"] if t not in (m, "mempamal") and t in edges}
                  for m, found in edges.items()}
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
    fake.write_text("def f():\n    from ..store import read_json\n    from ..display.graph import new_axes\n"
                    "    from ..display import folds_html\n    from . import static\n")
    found, _ = imports_of("mempamal.jupyter.bad", fake, all_modules())
    assert [target for _, target in skin_violations("mempamal.jupyter.bad", found)] == [
        "mempamal.store", "mempamal.display.graph"]


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


def defined_names(path):
    """Top-level names a module defines or imports."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def door_export_problems(exports, modules):
    """What is wrong with the door's ``(line, name, module)`` exports: a missing name, or a skin reached."""
    problems = []
    for line, name, target in exports:
        if target not in modules:
            problems.append(f"mempamal/__init__.py:{line} exports {name} from {target}, which does not exist")
        elif name not in defined_names(modules[target]):
            problems.append(f"mempamal/__init__.py:{line} exports {name}, which {target} does not define")
        elif layer_of(target)[1] == "skins" and name not in DOOR_SKIN_NAMES:
            problems.append(f"mempamal/__init__.py:{line} exports {name} from the skin {target}: "
                            "the package's names are the api's")
    return problems


def test_the_door_exports_only_the_api_and_existing_names(graph):
    modules, _ = graph
    problems = door_export_problems(door_edges(), modules)
    assert not problems, "\n".join(problems)


def test_the_layer_test_follows_the_door(tmp_path, graph):
    """An engine module entering through ``import mempamal`` reaches the api: ranked upward;
    an export of a skin's name, or of a name the target lacks, is reported."""
    modules, _ = graph
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    import mempamal\n    return mempamal.Experiment\n")
    found, _ = imports_of("mempamal.engine.bad", fake, modules)
    assert [target for _, target in found] == ["mempamal"]
    assert layer_of("mempamal")[0] < layer_of("mempamal.engine.bad")[0]
    planted = [(1, "ExperimentBuilder", "mempamal.jupyter.widgets"), (2, "Nowhere", "mempamal.workflow")]
    problems = door_export_problems(planted, modules)
    assert len(problems) == 2 and "skin" in problems[0] and "does not define" in problems[1]


def test_a_new_package_needs_a_layer():
    with pytest.raises(AssertionError, match="has no layer"):
        layer_of("mempamal.helpers.util")
    assert layer_of("mempamal.store.workdir")[1] == "store"
    assert layer_of("mempamal.model_comparison")[1] == "api"
