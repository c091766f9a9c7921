"""The task records: what each kind of task writes in ``outputs/<shard>/<id>.json``, typed and versioned.

This is the one module that knows the fields of a task output: the engine
writes the records (``engine/tasks.py``), and every reader (the search of a
``select`` task, ``final``'s gathering, the partial results, the search view,
the estimate, the bundles' timings) reads them back through
:meth:`TaskOutput.from_json`.  One output file is, in this order::

    task, build, definition, record_version    the stamp (integrity.output_stamp)
    <the fields of the kind's record>          FitRecord, SelectRecord, ...
    kind, start, ready, end, host, pid,        TaskRun: where, when and at what cost
    cpu_seconds, peak_rss_bytes, rss_growth_bytes
    <fields this mempamal does not know>       TaskOutput.extra, kept as they are
    output_sha256                              integrity.output_bytes

=============================  =====================================
kind (``store.taskids``)       record
=============================  =====================================
``fit``, ``fit-all``           :class:`FitRecord`
``select``                     :class:`SelectRecord`
``score``                      :class:`ScoreRecord`
``select-all``                 :class:`SelectAllRecord`
``final``                      :class:`FinalRecord`
=============================  =====================================

Permutation tasks (``perm-<m>-...``) are of the same kinds and write the
same records (never predictions nor models).

A field a task did not record (``train_scores`` without
``return_train_score``, ``predictions`` without ``predict=``, ...) is
:data:`ABSENT` and left out of the JSON; ``None`` is a value (a failed
fold's predictions).  The module sits in the store layer, beside the task
table, because the judge of an output (``integrity.output_problem``, below
the engine) checks its :data:`RECORD_VERSION`.

Examples
--------
>>> record = ScoreRecord(test_scores={"accuracy": 0.9}, fit_time=0.01, score_time=0.001, error=None)
>>> record.to_json()
{'test_scores': {'accuracy': 0.9}, 'fit_time': 0.01, 'score_time': 0.001, 'error': None}
>>> ScoreRecord.from_json(record.to_json()) == record
True
"""

import dataclasses

from ..exceptions import WorkdirError
from .taskids import TaskKind

#: The version of every record's layout, stamped on each output (:data:`VERSION_FIELD`).
#: An output of another version is not trusted: counted as not done and run
#: again, like an output of another definition of its task.
#:
#: 1. the layout of mempamal 0.1.0 (the first versioned one; an output
#:    without the field is older and is run again).
RECORD_VERSION = 1
#: The stamp field that holds :data:`RECORD_VERSION`.
VERSION_FIELD = "record_version"
#: The last field of every output: the sha256 of the output's bytes before it (``integrity.output_bytes``).
DIGEST_FIELD = "output_sha256"
#: The stamp every output starts with (``integrity.output_stamp``).
STAMP_FIELDS = ("task", "build", "definition", VERSION_FIELD)


class _Absent:
    """The value of a field a task did not record (its key is left out of the JSON)."""

    def __repr__(self):
        return "ABSENT"

    def __bool__(self):
        return False

    def __reduce__(self):
        return "ABSENT"  # pickles as a reference to the one instance


#: A field not recorded: ``record.train_scores is ABSENT`` without ``return_train_score``.
ABSENT = _Absent()


def _optional():
    return dataclasses.field(default=ABSENT)


class _Record:
    """JSON conversion shared by the records: the fields in declaration order, ABSENT ones left out."""

    def to_json(self):
        """The record's fields as the output holds them (``ABSENT`` ones left out).

        Examples
        --------
        >>> FinalRecord(results="results.json", results_sha256="ab").to_json()
        {'results': 'results.json', 'results_sha256': 'ab'}
        """
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if getattr(self, field.name) is not ABSENT}

    @classmethod
    def from_json(cls, payload):
        """The record of ``payload`` (a dict holding exactly this record's fields).

        A missing required field or an unknown one raises :class:`~mempamal.WorkdirError`.

        Examples
        --------
        >>> FinalRecord.from_json({"results": "results.json"})
        Traceback (most recent call last):
        ...
        mempamal.exceptions.WorkdirError: A FinalRecord lacks the field(s) ['results_sha256'] ...
        """
        names = {field.name for field in dataclasses.fields(cls)}
        required = {field.name for field in dataclasses.fields(cls)
                    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING}
        missing, unknown = sorted(required - set(payload)), sorted(set(payload) - names)
        if missing or unknown:
            raise WorkdirError(f"A {cls.__name__} lacks the field(s) {missing} and has unknown field(s) {unknown}: "
                               "not an output of this mempamal; run its task again.")
        return cls(**payload)

    @classmethod
    def joined(cls, *parts, **fields):
        """A record of this class made of the recorded fields of ``parts`` (later ones win) and ``fields``.

        Examples
        --------
        >>> search = InnerSearch(best_index=None, error="ValueError: all fits failed")
        >>> SelectAllRecord.joined(search, model=None, refit_time=0.0).to_json()
        {'best_index': None, 'error': 'ValueError: all fits failed', 'refit_time': 0.0, 'model': None}
        """
        values = {}
        for part in parts:
            values.update(part.to_json())
        values.update(fields)
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitRecord(_Record):
    """What a ``fit`` (or ``fit-all``) task records: its chunk of grid points on one inner split.

    One entry per grid point of the chunk, in the order of ``points``, as
    scikit-learn's ``_fit_and_score`` returns one result per candidate.

    Attributes
    ----------
    points : list of int
        The indices (in the experiment's candidates) of the points evaluated.
    scores : dict of str to list of float
        Per metric, the score of each point on the inner test part
        (``error_score`` where its fit or scoring failed).
    fit_time, score_time : list of float
        Seconds spent fitting / scoring each point.
    fit_failed : list of bool
        Whether each point's fit or scoring raised.
    errors : list of str or None
        The formatted error of each failed point, None for the others.
    train_scores : dict of str to list of float, optional
        Per metric, each point's score on the inner training part
        (``return_train_score=True`` only).

    Examples
    --------
    >>> record = FitRecord(points=[0, 1], scores={"score": [0.9, 0.8]}, fit_time=[0.1, 0.1],
    ...                    score_time=[0.01, 0.01], fit_failed=[False, False], errors=[None, None])
    >>> record.train_scores is ABSENT, sorted(record.to_json())[:3]
    (True, ['errors', 'fit_failed', 'fit_time'])
    """

    points: list
    scores: dict
    fit_time: list
    score_time: list
    fit_failed: list
    errors: list
    train_scores: dict = _optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoreRecord(_Record):
    """What a ``score`` task (plain cross-validation) records: one outer fold fitted and scored.

    Attributes
    ----------
    test_scores : dict of str to float
        Per metric, the score on the outer test part (``error_score`` if the fit failed).
    fit_time, score_time : float
        Seconds spent fitting / scoring.
    error : str or None
        The formatted error of the fit or scoring, None when it succeeded.
    train_scores : dict of str to float, optional
        Per metric, the score on the outer training part (``return_train_score=True``).
    predictions : dict or None, optional
        With ``predict=``: the files and digests of the fold's out-of-fold
        predictions (``engine/predictions.py``), None when its fit failed.
    model : dict or None, optional
        With ``return_estimator=True``: the record of ``models/o<k>.pkl``
        (``engine/models.save_model``: name, task, sha256, digest), None when its fit failed.

    Examples
    --------
    >>> ScoreRecord(test_scores={"score": 0.5}, fit_time=0.1, score_time=0.0, error=None).model is ABSENT
    True
    """

    test_scores: dict
    fit_time: float
    score_time: float
    error: str
    train_scores: dict = _optional()
    predictions: dict = _optional()
    model: dict = _optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class InnerSearch(_Record):
    """The inner search of an outer fold (``select``) or of all the data (``select-all``), from its fits.

    The first fields of :class:`SelectRecord` and :class:`SelectAllRecord`.
    The tables are in ``GridSearchCV``'s order: candidate by candidate, inner split by split.

    Attributes
    ----------
    inner_scores : dict of str to list of list of float
        Per metric, ``[candidate][inner split]`` test scores.
    inner_fit_time, inner_score_time : list of list of float
        ``[candidate][inner split]`` seconds.
    n_failed_fits : int
        How many inner fits failed.
    best_index : int or None
        The chosen candidate (``best_index_``); None when the search failed
        (every fit failed, ``refit`` names no metric the scorer returned) or without a grid.
    error : str or None
        Why the search (or, in a :class:`SelectRecord`, the outer fold) failed.
    inner_train_scores : dict of str to list of list of float, optional
        Per metric, ``[candidate][inner split]`` train scores (``return_train_score=True``).

    Examples
    --------
    >>> InnerSearch(best_index=2, error=None).to_json()
    {'best_index': 2, 'error': None}
    """

    inner_scores: dict = _optional()
    inner_fit_time: list = _optional()
    inner_score_time: list = _optional()
    n_failed_fits: int = _optional()
    best_index: int = None
    error: str = None
    inner_train_scores: dict = _optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelectRecord(InnerSearch):
    """What a ``select`` task records: the inner search of an outer fold, its refit, the outer scores.

    The fields of :class:`InnerSearch`, then those of :class:`ScoreRecord`
    (``error`` is the fold's: the search's, else the outer fit's), and:

    Attributes
    ----------
    refit_time : float, optional
        0.0 when the fold could not be scored (the search failed, or ``refit=False``).
    scoring_error : str, optional
        ``refit=False``: why the search could not score the outer test part
        (a ``GridSearchCV`` that refit nothing has no ``predict``).

    Examples
    --------
    >>> search = InnerSearch(inner_scores={"score": [[0.9]]}, inner_fit_time=[[0.1]], inner_score_time=[[0.0]],
    ...                      n_failed_fits=0, best_index=0)
    >>> fold = ScoreRecord(test_scores={"score": 0.8}, fit_time=0.2, score_time=0.0, error=None)
    >>> list(SelectRecord.joined(search, fold).to_json())[4:]
    ['best_index', 'error', 'test_scores', 'fit_time', 'score_time']
    """

    refit_time: float = _optional()
    test_scores: dict
    fit_time: float
    score_time: float
    train_scores: dict = _optional()
    predictions: dict = _optional()
    model: dict = _optional()
    scoring_error: str = _optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelectAllRecord(InnerSearch):
    """What a ``select-all`` task records: the search on all the data and the final model.

    The fields of :class:`InnerSearch` (only ``best_index`` and ``error``
    without a grid: plain CV refits the estimator itself), and:

    Attributes
    ----------
    refit_time : float
        Seconds of the refit on all the data (0.0 when nothing was refit).
    model : dict or None
        The record of ``models/final.pkl`` (``engine/models.save_model``);
        None when nothing was refit (``refit=False``, the search or the refit failed).
    traceback : str, optional
        The refit's traceback when it raised.

    Examples
    --------
    >>> SelectAllRecord(best_index=None, error=None, refit_time=0.5, model=None).to_json()
    {'best_index': None, 'error': None, 'refit_time': 0.5, 'model': None}
    """

    refit_time: float
    model: dict
    traceback: str = _optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinalRecord(_Record):
    """What the ``final`` task records: where it wrote ``results.json`` and that file's sha256.

    Attributes
    ----------
    results : str
        ``results.json``'s name in the workdir.
    results_sha256 : str
        The sha256 of its bytes: the output vouches for that file (``graph.state.find_results_problem``).

    Examples
    --------
    >>> FinalRecord(results="results.json", results_sha256="ab").results_sha256
    'ab'
    """

    results: str
    results_sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskRun(_Record):
    """Where, when and at what cost a task ran (every output; ``Results.timeline``, the estimate).

    Attributes
    ----------
    start, ready, end : float
        Epoch seconds: the task started, had loaded the workdir (a worker's
        first task loads it), ended.
    host : str
        The machine's name.
    pid : int
        The worker process.
    cpu_seconds : float
        CPU time of every thread of the process during the task.
    peak_rss_bytes, rss_growth_bytes : int
        The process's peak resident memory after the task, and how much the task raised it.
    versions : dict
        ``{package: version}`` of the process, for every package the build
        recorded (``engine/environment.py``); absent for a workdir built
        without versions, and in an output assembled by ``build(reuse=True)``.
    version_mismatch_allowed : dict
        Only when the task ran under other versions than the build's with
        ``allow_version_mismatch=True``: ``{package: {"here", "build"}}``.

    Examples
    --------
    >>> TaskRun(start=1.0, ready=1.5, end=3.0, host="n1", pid=12, cpu_seconds=1.4, peak_rss_bytes=10,
    ...         rss_growth_bytes=0).end
    3.0
    """

    start: float
    ready: float
    end: float
    host: str
    pid: int
    cpu_seconds: float
    peak_rss_bytes: int
    rss_growth_bytes: int
    versions: dict = _optional()
    version_mismatch_allowed: dict = _optional()


#: The record class of each task kind.
RECORDS = {TaskKind.FIT.value: FitRecord, TaskKind.FIT_ALL.value: FitRecord, TaskKind.SELECT.value: SelectRecord,
           TaskKind.SCORE.value: ScoreRecord, TaskKind.SELECT_ALL.value: SelectAllRecord,
           TaskKind.FINAL.value: FinalRecord}
_RUN_FIELDS = tuple(field.name for field in dataclasses.fields(TaskRun))
_REQUIRED_RUN_FIELDS = tuple(field.name for field in dataclasses.fields(TaskRun) if field.default is not ABSENT)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskOutput:
    """One whole output file: the stamp, the kind's record, how the task ran, and unknown fields.

    Attributes
    ----------
    task, build, definition : str
        The stamp (``integrity.output_stamp``): whose output this is.
    record_version : int
        The :data:`RECORD_VERSION` it was written with.
    kind : str
        The task's kind (``store.taskids.TaskKind``): which class ``record`` is (:data:`RECORDS`).
    record : FitRecord, ScoreRecord, SelectRecord, SelectAllRecord or FinalRecord
        What the task computed.
    run : TaskRun
        Where, when and at what cost it ran.
    extra : dict
        Fields this mempamal does not know (written by a later one with the
        same record version), kept and written back as they are, read by nobody.

    Examples
    --------
    >>> run = TaskRun(start=1.0, ready=1.0, end=2.0, host="n1", pid=7, cpu_seconds=0.9, peak_rss_bytes=1,
    ...               rss_growth_bytes=0)
    >>> output = TaskOutput(task="final", build="b1", definition="d1", kind="final",
    ...                     record=FinalRecord(results="results.json", results_sha256="ab"), run=run)
    >>> list(output.to_json())[:6]
    ['task', 'build', 'definition', 'record_version', 'results', 'results_sha256']
    >>> TaskOutput.from_json(output.to_json()) == output
    True
    """

    task: str
    build: str
    definition: str
    record_version: int = RECORD_VERSION
    kind: str
    record: _Record
    run: TaskRun
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self):
        """The output's fields in file order (the digest field is added by ``integrity.output_bytes``).

        Examples
        --------
        >>> run = TaskRun(start=1.0, ready=1.0, end=2.0, host="n1", pid=7, cpu_seconds=0.9, peak_rss_bytes=1,
        ...               rss_growth_bytes=0)
        >>> output = TaskOutput(task="final", build="b1", definition="d1", kind="final", run=run,
        ...                     record=FinalRecord(results="results.json", results_sha256="ab"), extra={"x": 1})
        >>> list(output.to_json())[-2:]
        ['rss_growth_bytes', 'x']
        """
        output = {"task": self.task, "build": self.build, "definition": self.definition,
                  VERSION_FIELD: self.record_version}
        output.update(self.record.to_json())
        output["kind"] = self.kind
        output.update(self.run.to_json())
        output.update(self.extra)
        return output

    @classmethod
    def from_json(cls, output):
        """The :class:`TaskOutput` of ``output`` (a parsed output file; its digest field, if any, is dropped).

        An output of another :data:`RECORD_VERSION`, of an unknown kind or
        lacking a field of its record raises :class:`~mempamal.WorkdirError`
        (the judge of outputs, ``integrity.output_problem``, refuses such a
        file before anyone reads it: this guards readers that only checked its digest).

        Examples
        --------
        >>> TaskOutput.from_json({"task": "final", "build": "b1", "definition": "d1", "kind": "final"})
        Traceback (most recent call last):
        ...
        mempamal.exceptions.WorkdirError: The output of task 'final' has record version None, ...
        """
        fields = dict(output)
        fields.pop(DIGEST_FIELD, None)
        version, kind = fields.get(VERSION_FIELD), fields.get("kind")
        if version != RECORD_VERSION:
            raise WorkdirError(f"The output of task {fields.get('task')!r} has record version {version!r}, this "
                               f"mempamal reads version {RECORD_VERSION}: run that task again.")
        if kind not in RECORDS:
            raise WorkdirError(f"The output of task {fields.get('task')!r} is of no known kind ({kind!r}).")
        missing = sorted({"task", "build", "definition", *_REQUIRED_RUN_FIELDS} - set(fields))
        if missing:
            raise WorkdirError(f"The output of task {fields.get('task')!r} lacks the field(s) {missing}: "
                               "run that task again.")
        stamp = {name: fields.pop(name) for name in STAMP_FIELDS}
        del fields["kind"]
        run = TaskRun(**{name: fields.pop(name) for name in _RUN_FIELDS if name in fields})
        record_class = RECORDS[kind]
        names = [field.name for field in dataclasses.fields(record_class)]
        record = record_class.from_json({name: fields.pop(name) for name in names if name in fields})
        return cls(**stamp, kind=kind, record=record, run=run, extra=fields)


def read_record(output):
    """The record (:class:`FitRecord`, ...) of the parsed output file ``output``.

    Examples
    --------
    >>> from mempamal.store import integrity, output_path
    >>> type(read_record(integrity.load_output(output_path(wf.workdir, "select-o0"))[0])).__name__
    'SelectRecord'
    """
    return TaskOutput.from_json(output).record
