# Two commands for a newcomer: `make serve` and `make test`. Each installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.10 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng sox sip-tester mosquitto mosquitto-clients baresip-core kamailio kamailio-tls-modules flite \
  asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722 prometheus chromium chromium-driver fonts-wqy-zenhei postgresql
# (the asterisk core sounds: real human recordings the speech tests build their corpus from;
# prometheus and promtool scrape and check /metrics in the tests; chromium and a CJK font run the
# agent desktop's browser tests; postgresql is the shared store of a multi-node site, and its tests
# run a real server)
# to build pjproject (pjsua2 with hundreds of calls per process and SRTP): scripts/build-pjsua2.sh
BUILD_PACKAGES := build-essential swig libssl-dev uuid-dev

.PHONY: serve test sip-flows deps venv pjsua2 lint unit integration flows clean bench bench-quick bench-site

deps:
	@scripts/install-deps.sh $(APT_PACKAGES) $(BUILD_PACKAGES)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

## pjsua2 from pjproject source, built once and cached in ~/.cache/ivr (a no-op when installed);
## the PyPI wheel (4 calls per worker) when a build is impossible
pjsua2: $(BIN)/.installed
	@scripts/build-pjsua2.sh $(BIN)/python

venv: $(BIN)/.installed pjsua2

## Serve the shipped flows: Kamailio front on udp 127.0.0.1:5060, workers, a private broker,
## the store and the HTTP API on 127.0.0.1:8080 (./ivr.yaml when present, else built-in defaults).
serve: deps venv
	$(BIN)/ivr serve

lint: venv
	$(BIN)/ruff check ivr tests
	$(BIN)/mypy ivr

flows: venv
	$(BIN)/ivr validate flows/
	$(BIN)/ivr test flows/

## The whole suite: lint, types, shipped flows and their tests, unit and integration tests (the
## shipped flows' cases again as real SIP calls among them); the slowest tests are listed at the end.
test: deps venv lint flows
	$(BIN)/pytest -q -p no:cacheprovider --durations=30 tests

sip-flows: deps venv
	$(BIN)/pytest -q -p no:cacheprovider tests/integration/test_sip_shipped_flows.py

## Benchmarks against SIPp's own UAS (bench/RESULTS.md): about 20 minutes, or under 3 with -quick.
bench: deps venv
	@command -v tcpdump >/dev/null || scripts/install-deps.sh tcpdump
	@test -x $(BIN)/py-spy || $(BIN)/pip install -q py-spy
	$(BIN)/python bench/run.py --out bench/results.json

bench-quick: deps venv
	@command -v tcpdump >/dev/null || scripts/install-deps.sh tcpdump
	@test -x $(BIN)/py-spy || $(BIN)/pip install -q py-spy
	$(BIN)/python bench/run.py --quick --out bench/results.json

## The site benchmark (issue 15): edge + two media nodes + ACD in network namespaces (root, for
## ip netns), steps of 50, 100, 200 calls through the edge and to SIPp's UAS; about 3 minutes.
bench-site: deps venv
	$(BIN)/python bench/site.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
