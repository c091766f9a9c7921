"""Sphinx configuration of mempamal's documentation (``make docs``; ``tests/test_docs.py`` builds it with -W).

The README is a short tour; these pages are the manual (their code blocks
run in ``tests/test_readme.py``, after the README's).  The API reference is
generated from the docstrings (autosummary + numpydoc), under the names users
import; the command-line page from the argparse parser.  The gallery shows
the executed copies of the notebooks stored in ``gallery/`` (``make gallery``
writes them; the build itself runs nothing).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import mempamal  # noqa: E402

project = "mempamal"
author = "the mempamal developers"
copyright = "mempamal developers, BSD-3-Clause"
release = version = mempamal.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",  # Markdown pages (MyST) and notebooks
]
# .rst first: autosummary writes its stub pages with the first suffix (they are reST)
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "_generated"]  # _generated: included by cli.md
html_theme = "pydata_sphinx_theme"
html_title = f"mempamal {release}"
html_static_path = []
html_theme_options = {
    "logo": {"text": f"mempamal {release}"},  # the version, on every page
    "navbar_end": ["theme-switcher"],
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "changelog": [], "faq": []}
templates_path = ["_templates"]  # autosummary's class page: the class's own members only

# ---- notebooks: gallery/ holds executed copies (make gallery); never run here
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# ---- API reference
autosummary_generate = True
# undoc-members: a public function without a docstring is shown (and flagged by GL08),
# not silently left out; ignore-module-all: `mempamal` re-exports names lazily through
# __all__, each is documented once, in the module that defines it.
autodoc_default_options = {"members": True, "undoc-members": True, "ignore-module-all": True}
autodoc_typehints = "none"  # types are in the numpydoc Parameters sections
numpydoc_show_class_members = False  # autosummary lists members; numpydoc would list them twice
numpydoc_class_members_toctree = False
# Every documented public name must have a docstring: numpydoc's GL08 turns a
# missing one into a warning, and -W into a failed build.  The stricter
# checks (Parameters/Returns sections for every argument, an Examples
# section) are not enforced here: many internal functions are documented in
# prose on purpose, and the Examples rule is checked by the test suite
# (tests/test_docstrings.py) rather than by the docs build.
numpydoc_validation_checks = {"GL08"}
numpydoc_validation_exclude = {
    # The constructor is documented by the class docstring (numpydoc's convention).
    r"\.__init__$",
    # The worker pools implement WorkerPool's primitives, which are documented
    # once on WorkerPool (the contract); each override's docstring would repeat it.
    r"Pool\.(capacity|submit|wait|result|abort|worker_died|recover|describe|live_workers)$",
}

# ---- references: a broken one fails the -W build
nitpicky = True
# The docs are built offline (no intersphinx inventories): references to
# other projects' objects (numpy, scikit-learn, the standard library, ...)
# cannot be resolved and are not ours to check.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|sklearn|pandas|pd|matplotlib|joblib|cloudpickle|threadpoolctl|tqdm|IPython"
               r"|ipywidgets|ipyparallel|soma_workflow|distributed|dask|dask_jobqueue|psutil|traitlets)(\..*)?"),
    (r"py:.*", r"(threading|concurrent|pathlib|os|subprocess|collections|typing|json|io|signal|socket"
               r"|tempfile|datetime|contextlib|multiprocessing|queue|abc|argparse|dataclasses)\..*"),
    (r"py:class", r"(optional|default.*|array-like.*|callable|str|int|float|bool|dict|list|tuple|None|path.*"
                  r"|object|type|Exception|iterable|sequence)"),
]
# The executed notebooks' widget outputs (the live run panel) have no
# JavaScript here; their static HTML form is shown instead.
suppress_warnings = ["mystnb.unknown_mime_type"]


def _cli_reference(app):
    """``_generated/cli-help.md``: the ``--help`` of every ``mempamal`` command, from the parser itself."""
    from mempamal.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    parts = ["```text", parser.format_help().rstrip(), "```"]
    for name, command in sub.choices.items():
        parts += [f"\n### mempamal {name}\n", "```text", command.format_help().rstrip(), "```"]
    target = HERE / "_generated" / "cli-help.md"
    target.parent.mkdir(exist_ok=True)
    text = "\n".join(parts) + "\n"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def _resolve_python_names(app, env, node, contnode):
    """Resolve a reference through the code when its written name is not where the object is documented.

    Every object is documented once, in the page of the module that defines
    it, but docstrings rightly write the names users type: ``mempamal.Results``
    (a lazy re-export), ``Workflow.open`` (inherited from ``TaskGraph``),
    ``WorkdirError`` (imported into the module).  The name is imported, and
    the reference retried with where the object really lives; a name that
    does not import stays broken (and fails the -W build).
    """
    import importlib

    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    for name in (f"{node.get('py:module')}.{target}" if node.get("py:module") else None, target):
        if not name:
            continue
        parts, obj = name.split("."), None
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attribute in parts[cut:]:
                    obj = getattr(obj, attribute)
            except AttributeError:
                obj = None
            break
        real = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if obj is None or None in real:
            if obj is not None and hasattr(obj, "__spec__"):  # a module
                real = (obj.__name__, None)
            else:
                continue
        canonical = ".".join(p for p in real if p)
        if canonical == target:
            continue
        domain = env.get_domain("py")
        for role in (node["reftype"], "obj"):
            found = domain.resolve_xref(env, node["refdoc"], app.builder, role, canonical, node, contnode)
            if found is not None:
                return found
    return None


def setup(app):
    app.connect("missing-reference", _resolve_python_names)
    app.connect("builder-inited", _cli_reference)
