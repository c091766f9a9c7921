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

.PHONY: demo test test-oldest bench docs gallery install install-dev clean

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

# Two pytest processes side by side: the tests that wait on a batch scheduler
# (-m scheduler: Slurm jobs, dask-jobqueue; marked in tests/conftest.py) and
# all the others. The first mostly wait for jobs, so the whole run takes about
# as long as its longer half. Each has its own temporary folder, outside the
# clone (tests copy the clone: a folder inside it would be copied into
# itself), one per clone; the scheduler half's report is printed after the
# other's; Ctrl-C or a kill stops both.
TEST_TMP := $(or $(TMPDIR),/tmp)/mempamal-tests-$(shell printf %s "$(CURDIR)" | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=   # e.g. make test PYTEST_ARGS='-k reuse -x'
test: $(DEV_STAMP)
	@rm -rf $(TEST_TMP) && mkdir -p $(TEST_TMP)
	@$(PY) -m pytest -q -m scheduler -p no:cacheprovider --basetemp=$(TEST_TMP)/scheduler --durations=15 $(PYTEST_ARGS) \
	    > $(TEST_TMP)/scheduler.log 2>&1 & sched=$$!; \
	trap 'kill $$sched 2>/dev/null' EXIT INT TERM; \
	$(PY) -m pytest -q -m "not scheduler" --basetemp=$(TEST_TMP)/main --durations=30 $(PYTEST_ARGS); main=$$?; \
	wait $$sched; sched_rc=$$?; trap - EXIT; \
	echo "=== the tests waiting on a scheduler (pytest -m scheduler; exit $$sched_rc) ==="; \
	cat $(TEST_TMP)/scheduler.log; \
	exit $$(( main != 0 ? main : sched_rc ))

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
