# The two user-facing commands: `make run` and `make test`.
# Both create the Python 3.10 virtualenv on first use; later calls reuse it.
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast lint venv clean-outputs chromium

run: $(INSTALLED)
	$(PYTHON) local_runner.py $(ARGS)

# Everything, including the slow end-to-end pipeline runs (this is what CI runs).
test: $(INSTALLED) chromium lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Lint and formatting are part of the tests (ruff.toml; the pin is in constraints.txt).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Skips the tests marked slow (whole-pipeline runs); for quick local iteration.
test-fast: $(INSTALLED) lint
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

venv: $(INSTALLED)

# The report's screenshot test renders the page in headless Chromium (Debian's
# package). Installed when missing and we are root (as in CI); otherwise stop
# and say how, rather than let the test fail halfway through the suite.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing chromium for the report screenshot test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "make test needs Chromium for the report screenshot test and this is not root:" >&2; \
	    echo "  sudo apt-get install -y chromium   (Debian/Ubuntu), then make test again" >&2; \
	    exit 1; \
	  fi; }

# Re-installs only when the declared dependencies or pins change.
$(INSTALLED): setup.py constraints.txt
	@test -x $(PYTHON) || "$$(bash scripts/find_python310.sh)" -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade "pip==24.3.1"
	$(PYTHON) -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $@

clean-outputs:
	rm -rf outputs
