"""Score the grid points sharing a fitted Pipeline prefix on data transformed once.

In a ``fit`` task, points whose Pipeline prefix has the same parameters share
one fitted prefix (:mod:`mempamal.engine.fitting`).  scikit-learn scores each
point with ``scorer(pipeline, X, y)``, and every response method the scorer
calls (``predict``, ``predict_proba``, ``decision_function``, ``score``) runs
``transform`` of each prefix step on ``X`` before the final step's method.
With a shared prefix these transforms compute the same array for every
point, so here they run once per prefix and split, and each point is scored
on a *stand-in*: a real :class:`~sklearn.pipeline.Pipeline` with the same
step names, every prefix step ``"passthrough"`` and the point's fitted final
step, given a private copy of the transformed data.

Why a Pipeline and not a hand-written look-alike: its own methods then do
everything else scikit-learn's scoring goes through (the fitted check, which
response methods exist, ``classes_``, the estimator type from the final
step's tags, the final step's routed parameters), in every scikit-learn
version, so the scorer makes the same checks and the final step gets the
same input: the floats are the same.

The shortcut is taken only where that argument holds; everywhere else the
whole pipeline is scored on ``X``, as before:

- the scorer is one of scikit-learn's own that hand the estimator nothing but
  ``X`` (the metric gets the score parameters): a ``_Scorer`` (every string
  scorer and ``make_scorer``), a ``_MultimetricScorer`` made only of them, or
  the estimator's ``score`` (``_PassthroughScorer``) with metadata routing
  off (with routing, ``Pipeline.score`` may route parameters to the
  transforms).  Any other callable may look at the steps or pass parameters;
- the estimator is exactly a ``Pipeline`` (a subclass may override its
  methods) whose final step is an estimator;
- ``X`` and the transformed data are plain numeric NumPy arrays, so they can
  be copied and compared bit for bit;
- the prefix's ``transform`` left its input unchanged (checked once per
  prefix: scikit-learn transforms the same ``X`` again for every response
  method, so an in-place transform would see other data the second time);
- the final step left its private copy unchanged (checked after every
  scoring; otherwise the point is scored again on the whole pipeline and the
  shortcut is off for the rest of the task).

What remains assumed is what scikit-learn's reproducibility rests on too:
``transform`` is a deterministic function of the fitted step and its input.
"""

from .metadata import routing_enabled


def scorer_allows_shortcut(scorer):
    """Whether ``scorer`` hands the estimator only ``X`` (see the module docstring).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.metrics import check_scoring
    >>> scorer_allows_shortcut(check_scoring(LogisticRegression(), "roc_auc"))
    True
    >>> scorer_allows_shortcut(lambda estimator, X, y: 0.0)
    False
    """
    from .._sklearn_compat import _MultimetricScorer, _PassthroughScorer, _Scorer, multimetric_parts

    kind = type(scorer)
    if kind is _Scorer:
        return True
    if kind is _MultimetricScorer:
        scorers = multimetric_parts(scorer)
        return isinstance(scorers, dict) and all(type(s) is _Scorer for s in scorers.values())
    if kind is _PassthroughScorer:
        return not routing_enabled()
    return False


def _plain_array(X):
    """A numeric NumPy array (a memory map too), not a subclass with other semantics (matrix)."""
    import numpy as np

    return type(X) in (np.ndarray, np.memmap) and X.dtype.kind in "biufc"


def _same_bits(a, b):
    """``a`` and ``b`` hold the same bytes (NaN payloads and signed zeros included)."""
    import numpy as np

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return np.array_equal(np.ascontiguousarray(a).reshape(-1).view(np.uint8),
                          np.ascontiguousarray(b).reshape(-1).view(np.uint8))


def _stand_in(pipeline):
    """A Pipeline presenting ``pipeline`` to a scorer, for data already transformed."""
    from sklearn.pipeline import Pipeline

    *prefix, final = pipeline.steps
    return Pipeline([(name, "passthrough") for name, _ in prefix] + [final])


class SharedTransforms:
    """The test (and train) split of one task transformed by the current shared prefix.

    ``score(estimator, X, y, params)`` is the scoring of the whole estimator
    (scikit-learn's ``_score`` with this task's scorer and ``error_score``);
    ``scorer`` is that scorer, to decide once whether the shortcut may apply.
    Points are visited in prefix order, so one cached array per split is
    enough: it is replaced when the prefix changes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.metrics import check_scoring
    >>> from sklearn.model_selection._validation import _score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> scorer = check_scoring(Ridge(), "r2")
    >>> shared = SharedTransforms(scorer, lambda est, X, y, params: _score(est, X, y, scorer, params))
    >>> X, y = np.arange(12.).reshape(6, 2) ** 2, np.arange(6.)
    >>> pipe = make_pipeline(StandardScaler(), Ridge()).fit(X[:4], y[:4])
    >>> X_test = X[4:]
    >>> shared.score(pipe, X_test, X_test.copy, y[4:], {}, "test") == _score(pipe, X_test, y[4:], scorer, {})
    True
    """

    def __init__(self, scorer, score):
        self._full_score = score
        self.enabled = scorer_allows_shortcut(scorer)
        self._entries = {}

    def score(self, pipeline, source, fresh, y, params, split):
        """The scores of ``pipeline`` on a private copy of ``source``, exactly as ``score`` gives them.

        ``source`` is the same object for every point scored on that data
        (it keys the cache by identity, and is never written to);
        ``fresh()`` makes the private copy, needed only when the whole
        pipeline is scored; ``split`` ("test" or "train") names the cache
        entry.
        """
        transformed = self._transformed(pipeline, source, split) if self.enabled else None
        if transformed is None:
            return self._full_score(pipeline, fresh(), y, params)
        # The final step gets its own copy, as it gets a fresh array from
        # every Pipeline call in scikit-learn (order="K": the same layout).
        Xt = transformed.copy(order="K")
        try:
            scores = self._full_score(_stand_in(pipeline), Xt, y, params)
        except Exception:
            if _same_bits(Xt, transformed):
                raise
            scores = None
        if scores is not None and _same_bits(Xt, transformed):
            return scores
        # The final step wrote into its input: with several response methods
        # scikit-learn would give each a fresh array; score as scikit-learn.
        self.enabled = False
        return self._full_score(pipeline, fresh(), y, params)

    def _transformed(self, pipeline, source, split):
        """``source`` through the fitted prefix of ``pipeline`` (cached), or None: no shortcut."""
        from sklearn.pipeline import Pipeline

        if type(pipeline) is not Pipeline or not _plain_array(source):
            return None
        final = pipeline.steps[-1][1]
        if final is None or (isinstance(final, str) and final == "passthrough"):
            return None
        prefix = tuple(step for _, step in pipeline.steps[:-1])
        entry = self._entries.get(split)
        if (entry is None or entry[0] is not source or len(entry[1]) != len(prefix)
                or not all(a is b for a, b in zip(entry[1], prefix))):
            entry = self._entries[split] = (source, prefix, self._transform(pipeline, source))
        return entry[2]

    @staticmethod
    def _transform(pipeline, X):
        """The calls ``Pipeline`` makes before its final step, on a private copy of ``X``.

        None (no shortcut for this prefix) when a transform fails (scoring
        the whole pipeline then fails the same way, as in scikit-learn), when
        it wrote into its input, or when its output is not a plain array.
        """
        from .._sklearn_compat import pipeline_transformers

        X_work = X.copy(order="K")
        Xt = X_work
        try:
            # Pipeline's own iteration: passthrough and None steps skipped.
            for step in pipeline_transformers(pipeline):
                Xt = step.transform(Xt)
        except Exception:
            return None
        if not _same_bits(X_work, X) or not _plain_array(Xt):
            return None
        return Xt
