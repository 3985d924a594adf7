# The two user-facing commands: `make run` and `make test`.
# Both create the Python 3.10 virtualenv on first use; later calls reuse it.
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast venv clean-outputs

run: $(INSTALLED)
	$(PYTHON) local_runner.py $(ARGS)

# Everything, including the slow end-to-end pipeline runs (this is what CI runs).
test: $(INSTALLED)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Skips the tests marked slow (whole-pipeline runs); for quick local iteration.
test-fast: $(INSTALLED)
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

venv: $(INSTALLED)

# Re-installs only when the declared dependencies or pins change.
$(INSTALLED): setup.py constraints.txt
	@test -x $(PYTHON) || "$$(bash scripts/find_python310.sh)" -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade "pip==24.3.1"
	$(PYTHON) -m pip install --quiet -c constraints.txt -e ".[test,plots]"
	@touch $@

clean-outputs:
	rm -rf outputs
