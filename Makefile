# The two commands of the README: `make run` and `make test`. Both bootstrap what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := prometheus redis-server

REPLAY := --nodes data/synthetic/nodes.csv --workload data/synthetic/workload.parquet \
	--day last --feast-home data/feast

.PHONY: run test lint install system-deps stack-down clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for bin in prometheus promtool redis-server; do command -v $$bin >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $(DEBIAN_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES); \
	fi

run: install system-deps
	$(BIN)/mlsched generate
	$(BIN)/mlsched stack up
	$(BIN)/mlsched pipeline run --local --pipeline training --data data/synthetic \
		--prometheus http://127.0.0.1:9090 --range-of data/synthetic/manifest.json \
		--tracking-uri http://127.0.0.1:5000
	$(BIN)/mlsched features --metrics data/synthetic/node_metrics --anomaly --feast-home data/feast
	$(BIN)/mlsched stack serve --feast-home data/feast
	$(BIN)/mlsched replay --extender http://127.0.0.1:8888 $(REPLAY) --output data/replay/report.json
	$(BIN)/mlsched live-check --nodes data/synthetic/nodes.csv --workload data/synthetic/workload.parquet
	$(BIN)/mlsched serving placement-champion --tracking-uri http://127.0.0.1:5000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: install system-deps lint
	$(BIN)/pytest

stack-down: install
	$(BIN)/mlsched stack down

clean: stack-down
	rm -rf data .stack build
