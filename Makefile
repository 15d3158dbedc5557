# optiboard — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HASH := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# `make run` installs what the service needs (API + worker); `make test` adds the test tools
# (Playwright, schemathesis, mypy, hadolint, ...) on top.
STAMP := $(VENV)/.installed-run-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
KERAS_DATASETS ?= $(HOME)/.keras/datasets

.PHONY: run test test-fast install install-test js-tools lint typecheck fashion-mnist bench clean

PY_PACKAGES := runspec backend worker cli optiboard tests bench examples

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[worker]"
	rm -f $(VENV)/.installed-run-*; touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PIP) install --quiet -e ".[worker,test]"
	rm -f $(VENV)/.installed-test-*; touch $(TEST_STAMP)

## make install: the service's packages only; make install-test: and the test tools
install: $(STAMP)
install-test: $(TEST_STAMP)

# Links Debian's dataset-fashion-mnist files into the Keras cache so the real loader works offline.
fashion-mnist:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
	  mkdir -p $(KERAS_DATASETS)/fashion-mnist && \
	  for f in /usr/share/datasets/fashion-mnist/*.gz; do ln -sf $$f $(KERAS_DATASETS)/fashion-mnist/; done; \
	fi

## make run: set up and start the whole service (SQLite + embedded Redis + API + one worker)
run: install fashion-mnist
	$(VENV)/bin/optiboard migrate
	$(VENV)/bin/optiboard up

# biome (lint + format check of frontend/js), pinned in package-lock.json, from the npm registry.
node_modules/.bin/biome: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

js-tools: node_modules/.bin/biome

## make test: linters, formatters and types, then the whole suite (needs PostgreSQL and Redis on
## 127.0.0.1, and /usr/bin/chromium)
test: install-test fashion-mnist lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

## make test-fast: the unit tier in seconds: no PostgreSQL, Redis, TensorFlow or browser needed.
## Plugins are named instead of autoloaded: pytest rewrites the asserts of every module of an
## autoloaded plugin's distribution (schemathesis' 137 among them), seconds of each run's collection
## when bytecode is not cached.
test-fast: install-test
	OPTIBOARD_TEST_TIER=fast OPTIBOARD_TEST_PG=postgresql://nobody@127.0.0.1:9/none \
	  OPTIBOARD_TEST_REDIS=redis://127.0.0.1:9 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 \
	  $(PY) -m pytest -q -p no:cacheprovider -p pytest_timeout -p _hypothesis_pytestplugin -p anyio.pytest_plugin

lint: install-test js-tools
	$(VENV)/bin/ruff check $(PY_PACKAGES)
	$(VENV)/bin/ruff format --check $(PY_PACKAGES)
	node_modules/.bin/biome ci frontend/js

typecheck: install-test
	$(VENV)/bin/mypy

bench: install-test fashion-mnist
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .optiboard
