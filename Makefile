# oscsim — every target installs what it needs first, so each works on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
SIM ?= oscillatory_rank_50
AUG ?= 1000

.PHONY: install test demo bench simulate oracle clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -n auto -q

demo: $(STAMP)
	$(PYTHON) -m oscsim.simulate simulation=$(SIM)
	$(PYTHON) -m oscsim.oracle simulation=$(SIM)

simulate: $(STAMP)
	$(PYTHON) -m oscsim.simulate simulation=$(SIM)

oracle: $(STAMP)
	$(PYTHON) -m oscsim.oracle simulation=$(SIM)

bench: $(STAMP)
	$(PYTHON) scripts/bench.py

clean:
	rm -rf $(VENV) multirun/* outputs data
