"""Errors that teach: one line naming the closest valid names, for what scikit-learn refuses too."""

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp

X, Y = load_iris(return_X_y=True)


@pytest.mark.parametrize("scoring, suggestion", [("acuracy", "'accuracy'"), ("roc-auc", "'roc_auc'"),
                                                 (["accuracy", "f1_macroo"], "'f1_macro'")])
def test_a_misspelled_scorer_gets_one_line_with_the_closest_names(scoring, suggestion, tmp_path):
    with pytest.raises(ValueError):  # scikit-learn refuses it too
        cross_validate(LogisticRegression(), X, Y, cv=2, scoring=scoring)
    with pytest.raises(mp.InvalidParameterError) as refused:
        mp.Experiment(LogisticRegression(), scoring=scoring)
    message = str(refused.value)
    assert f"did you mean {suggestion}" in message
    assert "\n" not in message and len(message) < 250  # not scikit-learn's list of 57 names


def test_a_bare_grid_key_on_a_pipeline_suggests_the_steps_parameter():
    pipeline = make_pipeline(StandardScaler(), LogisticRegression())
    with pytest.raises(ValueError):  # GridSearchCV refuses it when it fits
        GridSearchCV(pipeline, {"C": [1.0]}, cv=2).fit(X, Y)
    with pytest.raises(mp.InvalidParameterError) as refused:
        mp.Experiment(pipeline, param_grid={"C": [1.0]})
    message = str(refused.value)
    assert "did you mean 'logisticregression__C' for 'C'?" in message and len(message) < 250
