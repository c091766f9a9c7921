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

# One pytest process. The tests that wait on a batch scheduler are marked
# (-m scheduler, tests/conftest.py): `make test PYTEST_ARGS='-m "not scheduler"'`
# leaves them out. Run side by side with the others in a second process they
# disturbed timing-sensitive ipyparallel tests, so CI runs everything in one.
PYTEST_ARGS ?=   # e.g. make test PYTEST_ARGS='-k reuse -x'
test: $(DEV_STAMP)
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
