"""The task engine: ``run_task`` and what it uses.

``tasks`` (``run_task`` and one handler per task kind), ``context`` (what a
worker loads once per workdir), ``fitting`` and ``scoring`` (one fit and its
scores, as ``cross_validate`` computes them), ``search`` (the one home of
scikit-learn's search semantics: ranking, ``cv_results_``, best index),
``gather`` (the ``final`` task), ``grid`` and ``splits`` (candidates and folds,
shared with the build).  The engine imports only the store layer below it:
tasks run headless on cluster nodes.

Examples
--------
>>> from mempamal.engine.tasks import run_task
>>> run_task("runs/iris", "final")   # its output is already there
'skipped'
"""
