# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs mempamal, runs the demo
#   make test   -- creates .venv, installs mempamal + test deps, runs the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

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

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
