"""Train scores, predictions and metadata on the cluster backends (ipyparallel, Dask).

One small nested experiment that uses all three at once, run on a real
cluster of two engines/workers, compared with scikit-learn's own functions.
"""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp

from reference_outputs import (assert_same_predictions, assert_train_scores_match, reference_cross_validate,
                               reference_predictions)

X, y = make_classification(n_samples=40, n_features=4, flip_y=0.1, random_state=0)
labels = np.array(["no", "yes"], dtype=object)[y]
weights = np.random.RandomState(0).uniform(0.2, 2.0, 40)
groups = np.arange(40) % 4


# The same real clusters as the shared backend tests (module-scoped there too).
from test_backends import dask_client, ipp_client  # noqa: E402,F401 (fixtures)


def _experiment():
    return mp.Experiment(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.1, 1.0]}, cv=GroupKFold(4), inner_cv=2,
                         return_train_score=True, predict="predict")


@pytest.mark.parametrize("backend", ["ipyparallel", "dask"])
def test_train_scores_predictions_and_weights_on_cluster_backends(backend, request, tmp_path):
    client = request.getfixturevalue({"ipyparallel": "ipp_client", "dask": "dask_client"}[backend])
    experiment = _experiment()
    params = {"logisticregression__sample_weight": weights}
    results = experiment.run(X, labels, groups=groups, params=params, workdir=tmp_path / "wd",
                             backend=backend, client=client, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_train_scores_match(results, reference_cross_validate(experiment, X, labels, groups, params))
        assert_same_predictions(results.predictions, reference_predictions(experiment, X, labels, groups, params))


@pytest.mark.parametrize("backend", ["ipyparallel", "dask"])
def test_metadata_routing_reaches_cluster_workers(backend, request, tmp_path):
    client = request.getfixturevalue({"ipyparallel": "ipp_client", "dask": "dask_client"}[backend])
    params = {"sample_weight": weights}
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(accuracy_score).set_score_request(sample_weight=True)
        experiment = mp.Experiment(LogisticRegression(max_iter=300).set_fit_request(sample_weight=True),
                                   param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2, scoring=scorer,
                                   return_train_score=True, predict="predict_proba")
        workflow = experiment.build(X, y, params=params, workdir=tmp_path / "wd")
    results = workflow.run(backend=backend, client=client, progress=False)
    with sklearn.config_context(enable_metadata_routing=True):
        assert_train_scores_match(results, reference_cross_validate(experiment, X, y, None, params, routing=True))
        assert_same_predictions(results.predictions,
                                reference_predictions(experiment, X, y, None, params, routing=True))
