"""scikit-learn's global config of a build: captured once, fingerprinted, applied around every task.

A worker process (loky, an ipyparallel engine, a cluster job) starts with
scikit-learn's defaults; the build's config (``transform_output``,
``assume_finite``, metadata routing...) is stored with the experiment and
applied around each task, so no task depends on the process that runs it.

Examples
--------
>>> "display" in fingerprinted_config(capture_config())
False
"""

#: Config entries that change only how objects print, not what is computed:
#: left out of the fingerprint so that a display setting is not another experiment.
_DISPLAY_ONLY = ("display", "print_changed_only")


def capture_config():
    """scikit-learn's global config (``sklearn.get_config()``) as a plain dict, stored by build.

    Examples
    --------
    >>> import sklearn
    >>> with sklearn.config_context(assume_finite=True):
    ...     capture_config()["assume_finite"]
    True
    """
    import sklearn

    return dict(sklearn.get_config())


def fingerprinted_config(config):
    """The part of ``config`` that can change results (what the fingerprint counts).

    Examples
    --------
    >>> "display" in fingerprinted_config({"display": "text", "assume_finite": False})
    False
    """
    return {key: value for key, value in sorted(config.items()) if key not in _DISPLAY_ONLY}


def config_applied(config):
    """A context manager running its block under ``config`` (None: the current config).

    ``sklearn.config_context`` with the entries this scikit-learn knows: a
    worker process (loky, an ipyparallel engine, a cluster job) starts with
    the defaults, not with the config of the session that built the workdir.

    Examples
    --------
    >>> import sklearn
    >>> with config_applied({"transform_output": "pandas"}):
    ...     sklearn.get_config()["transform_output"]
    'pandas'
    """
    import contextlib

    import sklearn

    if not config:
        return contextlib.nullcontext()
    known = sklearn.get_config()
    return sklearn.config_context(**{key: value for key, value in config.items() if key in known})
