# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs mempamal, runs the demo
#   make test   -- creates .venv, installs mempamal + test deps, runs the tests
#   make docs   -- builds the documentation into docs/_build/html
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-oldest bench docs install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m mempamal.jupyter.install_startup
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m mempamal demo

test: $(STAMP)
	$(PY) -m pytest -q

# The exactness tests again on the oldest scikit-learn pyproject.toml accepts,
# in .venv-oldest/ (built once from ci/oldest-deps.txt; make test runs it too).
test-oldest: $(STAMP)
	$(PY) -m pytest -q -s tests/test_oldest_sklearn.py

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# HTML in docs/_build/html; warnings are errors (a broken reference or a
# missing docstring fails), as in tests/test_docs.py.
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html -q docs docs/_build/html
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) .venv-oldest runs .pytest_cache docs/_build docs/gallery docs/_generated docs/api/generated
