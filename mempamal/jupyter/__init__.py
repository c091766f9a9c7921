"""Jupyter front end: ``%mempamal`` magics and the ExperimentBuilder widget.

This is the only package of mempamal that imports IPython and ipywidgets.
"""

__all__ = ["ExperimentBuilder", "MempamalMagics"]


def __getattr__(name):
    if name == "ExperimentBuilder":
        from .widgets import ExperimentBuilder

        return ExperimentBuilder
    if name == "MempamalMagics":
        from .magics import MempamalMagics

        return MempamalMagics
    raise AttributeError(f"module 'mempamal.jupyter' has no attribute {name!r}")
