"""Which tasks of a run are ready and which are blocked: the scheduler every backend shares.

A :class:`DependencyTracker` is given the ids to run; it keeps the ready ones
in a queue, makes a dependent ready once its last wanted dependency has
finished (ahead of the queue, so outer folds finish one after the other),
and marks everything depending on a failed task as failed with
:data:`~mempamal.exceptions.BLOCKED_MESSAGE`.  The dispatch loop
(:func:`mempamal.backends.dispatch_loop.dispatch`) and the job-based
backends (Slurm, soma-workflow) make their decisions with it.
"""

from collections import deque

# How a backend reports a task it did not run because a dependency failed
# ("blocked by a failure" in ``mempamal status`` and ``WorkflowError``).
from ..exceptions import BLOCKED_MESSAGE  # noqa: F401 (re-exported for the backends)
from ..store.tasktable import TaskTable


class DependencyTracker:
    """Which tasks are ready, which are blocked: the scheduler every backend shares.

    Examples
    --------
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> tracker = DependencyTracker(wf, wf.pending_ids())
    >>> task_id = tracker.ready.popleft(); task_id
    'score-o0'
    >>> tracker.record(task_id, None, failed={}, bar=None)
    """

    def __init__(self, workflow, task_ids):
        table = getattr(workflow, "table", None)
        self._positions = None
        #: How many tasks were recorded finished (:meth:`record` with no error).
        self.n_finished = 0
        if isinstance(table, TaskTable):
            self._init_positions(table, task_ids)
            return
        wanted = set(task_ids)
        by_id = {task.id: task for task in workflow.tasks}
        self.waiting_on = {i: {d for d in by_id[i].deps if d in wanted} for i in task_ids}
        self.dependents = {}
        for task_id, deps in self.waiting_on.items():
            for dep in deps:
                self.dependents.setdefault(dep, []).append(task_id)
        self.ready = deque(i for i in task_ids if not self.waiting_on[i])

    def _init_positions(self, table, task_ids):
        """The same decisions on integers: a workdir's table gives each task's one dependent.

        For a million tasks, no record and no set per task: the position of
        each id, its dependent's position, and per position the number of
        wanted dependencies not finished yet.
        """
        self._ids = list(table.ids())
        self._positions = {task_id: position for position, task_id in enumerate(self._ids)}
        self._dependent = table.dependent_positions()
        n = len(self._ids)
        self._wanted, self._finished = bytearray(n), bytearray(n)
        positions = [self._positions[task_id] for task_id in task_ids]
        for position in positions:
            self._wanted[position] = 1
        self._waiting = [0] * n
        wanted, dependent, waiting = self._wanted, self._dependent, self._waiting
        for position in positions:
            parent = dependent[position]
            if parent >= 0 and wanted[parent]:
                waiting[parent] += 1
        self.ready = deque(task_id for task_id, position in zip(task_ids, positions) if not waiting[position])

    def finished(self, task_id):
        """Mark ``task_id`` done: a dependent whose last dependency it was becomes ready.

        Examples
        --------
        >>> from types import SimpleNamespace as Record
        >>> wf = Record(tasks=[Record(id="fit", deps=[]), Record(id="select", deps=["fit"])])
        >>> tracker = DependencyTracker(wf, ["fit", "select"])
        >>> tracker.ready.popleft()
        'fit'
        >>> tracker.finished("fit"); list(tracker.ready)
        ['select']
        """
        if self._positions is not None:
            position = self._positions.get(task_id)
            if position is None or not self._wanted[position]:
                return
            parent = self._dependent[position]
            if parent < 0 or not self._wanted[parent]:
                return
            if not self._finished[position]:
                self._finished[position] = 1
                self._waiting[parent] -= 1
            if not self._waiting[parent]:
                self.ready.appendleft(self._ids[parent])  # as below
            return
        for child in self.dependents.get(task_id, ()):
            self.waiting_on[child].discard(task_id)
            if not self.waiting_on[child]:
                # Ahead of the queue: a select runs as soon as its fits are done,
                # so outer folds finish one after the other, not all at the end.
                self.ready.appendleft(child)

    def blocked_by(self, task_id):
        """Every task that (transitively) depends on ``task_id``.

        Examples
        --------
        >>> tracker = DependencyTracker(wf, [task.id for task in wf.tasks])
        >>> sorted(tracker.blocked_by("fit-o0-i0-c0"))
        ['final', 'select-o0']
        """
        if self._positions is not None:
            blocked, position = set(), self._positions.get(task_id)
            if position is None or not self._wanted[position]:
                return blocked
            position = self._dependent[position]
            while position >= 0 and self._wanted[position]:
                blocked.add(self._ids[position])
                position = self._dependent[position]
            return blocked
        blocked, stack = set(), [task_id]
        while stack:
            for child in self.dependents.get(stack.pop(), ()):
                if child not in blocked:
                    blocked.add(child)
                    stack.append(child)
        return blocked

    def record(self, task_id, error, failed, bar=None):
        """Mark ``task_id`` finished (``error`` None) or failed, blocking its dependents.

        Examples
        --------
        >>> tracker = DependencyTracker(wf, [task.id for task in wf.tasks])
        >>> failed = {}
        >>> tracker.record("fit-o0-i0-c0", "ValueError: bad", failed)
        >>> failed["select-o0"]
        "not run: depends on failed task 'fit-o0-i0-c0'"
        """
        if error is None:
            self.n_finished += 1
            self.finished(task_id)
            if bar is not None:
                bar.update(1)
            return
        failed[task_id] = error
        blocked = self.blocked_by(task_id)
        for child in blocked:
            failed.setdefault(child, f"{BLOCKED_MESSAGE} {task_id!r}")
        if bar is not None:
            bar.update(1 + len(blocked))
