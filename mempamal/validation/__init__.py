"""Argument checks of the public api: a clear error naming the argument, before any file is written.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.arguments`            ``Experiment(...)``'s arguments
:mod:`~.build`                ``build(...)``'s: data, params, workdir options, splits
============================  ==================================================

Examples
--------
>>> from mempamal.validation.arguments import check_random_state
>>> check_random_state(0)   # fine: nothing happens
>>> check_random_state("x")
Traceback (most recent call last):
...
ValueError: The 'random_state' parameter ...
"""
