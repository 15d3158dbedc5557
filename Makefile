# optiboard — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
KERAS_DATASETS ?= $(HOME)/.keras/datasets

.PHONY: run test test-fast install lint typecheck fashion-mnist bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[worker,test]"
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

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

## make test: the whole suite (needs PostgreSQL and Redis on 127.0.0.1, and /usr/bin/chromium)
test: install fashion-mnist
	$(VENV)/bin/ruff check backend worker tests bench
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

## make test-fast: the unit tier in seconds: no PostgreSQL, Redis, TensorFlow or browser needed
test-fast: install
	OPTIBOARD_TEST_TIER=fast OPTIBOARD_TEST_PG=postgresql://nobody@127.0.0.1:9/none \
	  OPTIBOARD_TEST_REDIS=redis://127.0.0.1:9 $(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check backend worker tests bench

typecheck: install
	$(VENV)/bin/mypy backend

bench: install fashion-mnist
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .optiboard
