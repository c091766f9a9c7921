"""Argument checks of the public api: a clear error naming the argument, before any file is written.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.arguments`            ``Experiment(...)``'s arguments
:mod:`~.build`                ``build(...)``'s: data, params, workdir options, splits
============================  ==================================================

Examples
--------
>>> from mempamal.validation.arguments import check_experiment_params
>>> check_experiment_params({"random_state": 0, "cv": 3})
"""
