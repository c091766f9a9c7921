"""Every public name has a numpydoc docstring with an Examples section.

"Public" is what a user or a backend writer reaches:

- every name of ``mempamal.__all__`` and, for classes, every public method
  and property they define or inherit from mempamal classes (``Workflow``
  inherits ``TaskGraph``'s);
- every public function and class of the api modules (experiment, workflow,
  results, run, exceptions, the display modules, the validation modules with
  their ``check_*``, fingerprint), of ``backends/base.py``, ``tracker.py``
  and ``dispatch_loop.py`` (what a new backend plugs into) and of the Jupyter
  skin, with their public methods and properties (the displays'
  ``from_results``/``from_workflow``/``plot`` among them);
- the ``run`` of every Backend subclass in ``backends/``.

Engine, store and graph internals are documented for their readers but are
not an interface, so they are not walked.
"""

import importlib
import inspect
import pkgutil
import types

import mempamal

API_MODULES = ["mempamal.experiment", "mempamal.workflow", "mempamal.results", "mempamal.run",
               "mempamal.estimate", "mempamal.cost_model", "mempamal.graph.schedule",
               "mempamal.exceptions",
               "mempamal.display.results", "mempamal.display.graph", "mempamal.display.grid", "mempamal.display.html",
               "mempamal.validation.arguments", "mempamal.validation.build", "mempamal.store.fingerprint", "mempamal.backends.base",
               "mempamal.backends.tracker", "mempamal.backends.dispatch_loop"]
SKIN_PACKAGES = ["mempamal.jupyter"]
SCRIPTS = {"mempamal.jupyter.install_startup"}


def _doc(obj):
    # getdoc dedents, so the section underline sits at the line start; a
    # property's own __doc__ is dedented the same way.
    if isinstance(obj, property):
        return inspect.cleandoc(obj.__doc__) if obj.__doc__ else None
    return inspect.getdoc(obj)


def members(cls):
    """``(name, object)`` of the public methods and properties ``cls`` defines or inherits from mempamal."""
    found = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("mempamal"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                found[name] = value
    return sorted(found.items())


def problems(qualname, obj):
    """What is wrong with the docstring of ``obj``: a missing docstring or a missing Examples section."""
    doc = _doc(obj)
    if not doc or not doc.strip():
        return [f"{qualname}: no docstring"]
    if "Examples\n--------" not in doc:
        return [f"{qualname}: no Examples section"]
    return []


def walk(named):
    """Problems of ``(qualname, object)`` pairs and, for classes, of their members."""
    found = []
    for qualname, obj in named:
        found += problems(qualname, obj)
        if inspect.isclass(obj):
            for name, member in members(obj):
                found += problems(f"{qualname}.{name}", member)
    return found


def defined_in(module):
    """Public functions and classes ``module`` defines (not those it imports)."""
    return [(f"{module.__name__}.{name}", obj) for name, obj in sorted(vars(module).items())
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__]


def public_names():
    named = [(f"mempamal.{name}", getattr(mempamal, name)) for name in mempamal.__all__]
    modules = list(API_MODULES)
    for package in SKIN_PACKAGES:
        modules += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__,
                                                                package + ".")
                    # A console script, like cli.py: its interface is its --help.
                    if info.name not in SCRIPTS]
    for name in modules:
        named += defined_in(importlib.import_module(name))
    backends = importlib.import_module("mempamal.backends")
    for info in pkgutil.walk_packages(backends.__path__, "mempamal.backends."):
        module = importlib.import_module(info.name)
        for qualname, obj in defined_in(module):
            if inspect.isclass(obj) and issubclass(obj, mempamal.Backend) and obj is not mempamal.Backend:
                named.append((f"{qualname}.run", obj.run))
    # A name reached twice (re-exported, inherited) is reported once.
    seen, unique = set(), []
    for qualname, obj in named:
        if id(obj) not in seen:
            seen.add(id(obj))
            unique.append((qualname, obj))
    return unique


def test_every_public_name_has_a_docstring_with_examples():
    found = sorted(set(walk(public_names())))
    assert not found, f"{len(found)} public names lack a numpydoc docstring with Examples:\n" + "\n".join(found)


def test_the_walk_reaches_the_names_it_promises():
    reached = set()
    for qualname, obj in public_names():
        reached.add(qualname)
        if inspect.isclass(obj):
            reached.update(f"{qualname}.{name}" for name, _ in members(obj))
    assert {
        "mempamal.Workflow.run", "mempamal.Workflow.done_ids",  # done_ids is inherited from TaskGraph
        "mempamal.display.results.ScoresDisplay.from_results", "mempamal.display.results.ScoresDisplay.plot",
        "mempamal.display.grid.GridDisplay.plot", "mempamal.display.graph.GraphDisplay.from_workflow",
        "mempamal.validation.arguments.check_experiment_params", "mempamal.validation.build.check_data",
        "mempamal.backends.tracker.DependencyTracker.record", "mempamal.backends.dispatch_loop.dispatch",
        "mempamal.backends.local.LocalBackend.run",
        "mempamal.backends.slurm.backend.SlurmBackend.run", "mempamal.jupyter.widgets.ExperimentBuilder.experiment",
    } <= reached


def test_the_check_reports_an_undocumented_function_and_one_without_examples():
    module = types.ModuleType("mempamal.planted")

    def undocumented():
        pass

    def no_examples():
        """Do a thing.

        Returns
        -------
        None
        """

    class Documented:
        """A class.

        Examples
        --------
        >>> Documented().method()
        """

        def method(self):
            pass

    for obj in (undocumented, no_examples, Documented):
        obj.__module__ = module.__name__
        setattr(module, obj.__name__, obj)
    assert walk(defined_in(module)) == [
        "mempamal.planted.Documented.method: no docstring",
        "mempamal.planted.no_examples: no Examples section",
        "mempamal.planted.undocumented: no docstring",
    ]
