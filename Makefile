# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench bench-all soak install clean screens

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# Only for its data file: the Compose specification JSON schema that a test checks our
	# docker-compose.yml against (no Docker engine runs here). --no-deps: nothing else comes.
	$(PY) -m pip install --quiet --no-deps docker-compose==1.29.2
	touch $(STAMP)

install: $(STAMP)

# Demo mode (SIMPUL_DEMO=true): lines without credentials write to the "Kotak keluar demo"
# page instead of trying to send. `make run PORT=8080` for another port.
run: $(STAMP)
	SIMPUL_DEMO=true $(VENV)/bin/simpul db upgrade
	SIMPUL_DEMO=true $(VENV)/bin/simpul demo
	SIMPUL_DEMO=true $(VENV)/bin/simpul serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	# the import contracts in pyproject.toml: adapters and normalizer never import hub, nothing
	# imports hub.app, no import cycles in hub (docs/architecture.md)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

# Screenshots of every page at 360 px and 1280 px into docs/screens/ (Chromium, demo-mode hub).
screens: $(STAMP)
	SIMPUL_SCREENS=1 $(PY) -m pytest -q tests/web/test_browser_pages.py -k screenshots -p no:randomly

# Benchmarks print their figures; each compares against a ceiling measured in the same run.
# bench-all adds the long ones (a 100,000-row import, a million tickets for the dashboard).
bench: $(STAMP)
	$(PY) bench/intake.py
	$(PY) bench/normalize.py
	$(PY) bench/routing.py
	$(PY) bench/delivery.py

bench-all: bench
	$(PY) bench/import.py
	$(PY) bench/dashboard.py

# Faults and hostile input (issue #15): kill -9 under load with client retries, the hub's own
# PostgreSQL stopped under load, an OPD failing then recovering, a slow OPD with two workers, a
# poison message among 1,000. Prints a tally per scenario; figures go to bench/results/latest.json.
# SOAK_ARGS="--messages 10000 --stop-s 20 --fail-s 60" for the full-size run of the issue.
soak: $(STAMP)
	$(PY) bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache
