"""What the experiment builder offers: estimators to pick, their tunable parameters, the splitters.

Examples
--------
>>> from sklearn.svm import SVC
>>> "C" in tunable_parameters(SVC())
True
"""

SPLITTERS = ("StratifiedKFold", "KFold", "GroupKFold", "ShuffleSplit")
#: Parameter names that are plumbing, not a model choice: left out of the grid form.
NOT_TUNABLE = {"memory", "steps", "verbose", "verbose_feature_names_out", "n_jobs", "copy", "copy_X",
               "warm_start", "transform_input", "transformers", "random_state", "pre_dispatch"}


def tunable_parameters(estimator):
    """``get_params(deep=True)`` names worth putting in a grid (no plumbing, no step objects).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.svm import SVC
    >>> tunable_parameters(make_pipeline(StandardScaler(), SVC()))[:3]
    ['standardscaler__with_mean', 'standardscaler__with_std', 'svc__C']
    """
    params = estimator.get_params(deep=True)
    return sorted(name for name, value in params.items()
                  if name.rsplit("__", 1)[-1] not in NOT_TUNABLE and not hasattr(value, "get_params"))


def estimator_catalogue():
    """Common estimators and pipelines, by display name (fresh objects each call).

    Examples
    --------
    >>> sorted(estimator_catalogue())[:2]
    ['RandomForestClassifier', 'RandomForestRegressor']
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    return {
        "scaled LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "scaled SVC": make_pipeline(StandardScaler(), SVC()),
        "scaled KNeighborsClassifier": make_pipeline(StandardScaler(), KNeighborsClassifier()),
        "RandomForestClassifier": RandomForestClassifier(random_state=0),
        "scaled Ridge": make_pipeline(StandardScaler(), Ridge()),
        "scaled SVR": make_pipeline(StandardScaler(), SVR()),
        "RandomForestRegressor": RandomForestRegressor(random_state=0),
    }


def make_splitter(name, n_splits, shuffle, seed):
    """The scikit-learn splitter the builder's CV controls describe.

    Examples
    --------
    >>> make_splitter("KFold", 3, shuffle=True, seed=0)
    KFold(n_splits=3, random_state=0, shuffle=True)
    >>> make_splitter("GroupKFold", 4, shuffle=False, seed=0)
    GroupKFold(n_splits=4, random_state=None, shuffle=False)
    """
    from sklearn import model_selection

    if name == "ShuffleSplit":
        return model_selection.ShuffleSplit(n_splits=n_splits, test_size=0.2, random_state=seed)
    if name == "GroupKFold":
        return model_selection.GroupKFold(n_splits=n_splits)
    splitter = getattr(model_selection, name)
    return splitter(n_splits=n_splits, shuffle=shuffle, random_state=seed if shuffle else None)
