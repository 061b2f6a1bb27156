# callagent — `make demo` runs a whole simulated call; `make test` runs the test suite. Both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-packages demo test lint bench mutation clean

install: system-packages $(STAMP)

# espeak-ng is the offline TTS engine (Korean voice) used by the demo and the tests.
system-packages:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  echo "installing espeak-ng"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; }
# promtool checks ops/prometheus; chromium renders the dashboard in its test (Korean glyphs from fonts-nanum).
# Optional: where apt cannot install them, those tests skip and say so.
	@missing=""; command -v promtool >/dev/null 2>&1 || missing="prometheus"; \
	  command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	  fc-list 2>/dev/null | grep -qi nanum || missing="$$missing fonts-nanum"; \
	  if [ -n "$$missing" ]; then echo "installing$$missing"; \
	    { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	    echo "could not install$$missing: the promtool and browser tests will skip"; fi

# torch is pinned first: the CPU build of that version is what the CPU tests use; an unpinned torch would pull
# several GB of CUDA packages. The GPU engines' own stack comes from `pip install .[gpu]` on GPU hosts.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ml]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/callagent demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check agent tests

bench: install
	$(VENV)/bin/callagent bench all

# Mutation testing (not part of `make test`): each listed module against the fast tests that cover it, one worker.
# MODULES="agent/esl/codec.py ..." narrows the run; the report goes to var/mutation/report.md.
mutation: install
	$(PY) tools/mutation/run.py $(MODULES)

clean:
	rm -rf $(VENV) var bench/results *.egg-info
