# The README's two commands: `make demo` and `make test`. Each creates the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench test-deploy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/fedsurv demo

# ruff, then lint-imports (the import contracts in pyproject.toml [tool.importlinter]), then pytest
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tests/lint_imports.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -ra --durations=15

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/tally_bench.py

# Container images + a containerised site node against a containerised coordinator on
# 127.0.0.1 (podman; several minutes on a cold cache): the node comes online through the
# coordinator's Fleet-only proxy, and Control/Runtime calls from a site-image container are
# refused. Not part of `make test`. See deploy/README.md.
test-deploy: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON="$(CURDIR)/$(BIN)/python" bash deploy/test-deploy.sh

clean:
	rm -rf $(VENV) fedsurv-demo .pytest_cache .ruff_cache
