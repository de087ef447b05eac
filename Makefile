# The two commands a newcomer needs: `make test` and `make demo`. Each installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PY_DEPS := $(VENV)/.installed
NODE_DEPS := node_modules/.installed
CHECKOV_DEPS := .venv-checkov/.installed

.PHONY: test lint format demo bench clean chromium

test: chromium $(PY_DEPS) $(NODE_DEPS) $(CHECKOV_DEPS) lint  ## install everything, lint, run all tests
	$(PY) -m pytest

lint: $(PY_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(PY_DEPS)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(PY_DEPS) $(NODE_DEPS)  ## the pipeline on Azurite, mail in a local inbox; KEEP=1 keeps it running
	$(PY) -m scripts.demo $(if $(KEEP),--keep)

bench: $(PY_DEPS) $(NODE_DEPS)  ## end-to-end throughput on Azurite (N=2000 by default)
	$(PY) -m scripts.bench --rows $${N:-2000}

chromium:  ## Debian's chromium for tests/test_inbox_browser.py, installed with apt-get if missing
	@command -v chromium >/dev/null || { \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "Installing chromium (apt-get) for the browser test"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	}

$(PY_DEPS): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHECKOV_DEPS): requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) .venv-checkov node_modules out .pytest_cache .ruff_cache
