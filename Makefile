# Two commands for a newcomer: `make serve` and `make test`. Each installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.10 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng sox sip-tester mosquitto mosquitto-clients baresip-core kamailio

.PHONY: serve test deps venv lint unit integration flows clean

deps:
	@scripts/install-deps.sh $(APT_PACKAGES)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

## Serve the shipped flows. Until the SIP front lands (issue 3) this runs the bank flow
## over the console channel: type keys (12#), words, an empty line for silence.
serve: deps venv
	$(BIN)/ivr simulate flows/acme-bank.yaml

lint: venv
	$(BIN)/ruff check ivr tests
	$(BIN)/mypy ivr

flows: venv
	$(BIN)/ivr validate flows/
	$(BIN)/ivr test flows/

## The whole suite: lint, types, shipped flows and their tests, unit and integration tests.
test: deps venv lint flows
	$(BIN)/pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
