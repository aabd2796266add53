# oscsim — every target installs what it needs first, so each works on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
SIM ?= oscillatory_rank_50
AUG ?= 1000

.PHONY: install test demo bench simulate oracle clean faithfulness

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[dev]' --config-settings editable_mode=compat
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

# The seed's Batch 1 baseline (Iter 1 Config line, 72,000 iterations) with both MLP_node
# initialisations of the faithful model, on 3 seeds, two runs at a time; then the table.
FAITH_DIR ?= multirun/faithfulness
faithfulness: $(STAMP)
	$(PYTHON) -m oscsim.train -m model=faithful model.node_init=all_zero,last_layer seed=1,2,3 \
	  lr_k=0.005 lr_node=0.001 lr_sub=0.0005 batch_size=8 n_epochs=1 data_augmentation_loop=1000 \
	  coeff_MLP_node_L1=1.0 coeff_MLP_sub_norm=0.0 coeff_k_floor=0.0 threads=1 progress=false \
	  hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweep.dir=$(FAITH_DIR) \
	  'hydra.sweep.subdir=$${model.node_init}_seed$${seed}'
	$(PYTHON) scripts/summarize_runs.py $(FAITH_DIR)
