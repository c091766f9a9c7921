# Two commands do all the set-up on a fresh machine:
#   make demo    -- creates .venv, installs mempamal with the user's extras ([all]), runs the demo
#   make test    -- the same, plus the development tools ([dev]), then runs the tests
#   make docs    -- builds the documentation into docs/_build/html
#   make gallery -- executes notebooks/ into docs/gallery/ (the copies the docs show)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: what a user needs (make demo) and the development tools on top
# (pytest, JupyterLab, Playwright, Sphinx...: several hundred MB more).
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-serial test-oldest bench docs gallery install install-dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	$(PY) -m mempamal.jupyter.install_startup
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

demo: $(STAMP)
	$(PY) -m mempamal demo

# Three pytest processes side by side, so that the tests that wait use the
# cores the others leave idle (one process alone left a third of the CPU
# idle): the tests that wait on a batch scheduler (-m scheduler: Slurm jobs,
# dask-jobqueue), those that start, kill and wait on other processes
# (-m processes: tests/faults/, tests/browser/, the concurrent runs) and all
# the others; both markers are set in tests/conftest.py. Each process has its
# own temporary folder outside the clone (tests copy the clone: a folder
# inside it would be copied into itself), one per clone. The reports of the
# two background processes are printed after the foreground one's; Ctrl-C or
# a kill stops all three. `make test PYTEST_ARGS='-k reuse'` passes the
# arguments to each; `make test-serial` runs everything in one process.
TEST_TMP := $(or $(TMPDIR),/tmp)/mempamal-tests-$(shell printf %s "$(CURDIR)" | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=   # e.g. make test PYTEST_ARGS='-k reuse -x'
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
test: $(DEV_STAMP)
	@rm -rf $(TEST_TMP) && mkdir -p $(TEST_TMP)
	@$(PYTEST) -m scheduler --basetemp=$(TEST_TMP)/scheduler --durations=15 $(PYTEST_ARGS) \
	    > $(TEST_TMP)/scheduler.log 2>&1 & sched=$$!; \
	$(PYTEST) -m "processes and not scheduler" --basetemp=$(TEST_TMP)/processes --durations=15 $(PYTEST_ARGS) \
	    > $(TEST_TMP)/processes.log 2>&1 & procs=$$!; \
	trap 'kill $$sched $$procs 2>/dev/null' EXIT INT TERM; \
	$(PYTEST) -m "not scheduler and not processes" --basetemp=$(TEST_TMP)/main --durations=30 $(PYTEST_ARGS); \
	main=$$?; wait $$procs; procs_rc=$$?; wait $$sched; sched_rc=$$?; trap - EXIT; \
	echo "=== the tests driving other processes (pytest -m \"processes and not scheduler\"; exit $$procs_rc) ==="; \
	cat $(TEST_TMP)/processes.log; \
	echo "=== the tests waiting on a scheduler (pytest -m scheduler; exit $$sched_rc) ==="; \
	cat $(TEST_TMP)/scheduler.log; \
	for rc in $$main $$procs_rc $$sched_rc; do \
	    case $$rc in 0|5) ;; *) exit $$rc;; esac; \
	done

# Everything in one pytest process (slower; the same tests).
test-serial: $(DEV_STAMP)
	$(PY) -m pytest -q --durations=30 $(PYTEST_ARGS)

# The exactness tests again on the oldest scikit-learn pyproject.toml accepts,
# in .venv-oldest/ (built once from ci/oldest-deps.txt; make test runs it too).
test-oldest: $(DEV_STAMP)
	$(PY) -m pytest -q -s tests/test_oldest_sklearn.py

bench: $(DEV_STAMP)
	$(PY) benchmarks/run_all.py

# HTML in docs/_build/html; warnings are errors (a broken reference or a
# missing docstring fails), as in tests/test_docs.py.
docs: $(DEV_STAMP)
	$(PY) -m sphinx -W --keep-going -b html -q docs docs/_build/html
	@echo "open docs/_build/html/index.html"

# The executed copies of the notebooks the docs show (committed; a test fails
# when a notebook's code no longer matches its copy). Run after editing one.
gallery: $(DEV_STAMP)
	$(PY) docs/execute_notebooks.py

clean:
	rm -rf $(VENV) .venv-oldest runs .pytest_cache docs/_build docs/_generated docs/api/generated
