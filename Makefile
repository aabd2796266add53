# oscsim — every target installs what it needs first, so each works on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
SIM ?= oscillatory_rank_50
AUG ?= 1000
JOBS ?= 2
N ?= 12
STUDY ?= demo_$(SIM)
# The lab's Batch 1 settings, with its model: what `make batch1/batch2` rerun.
LAB_ARGS = model=faithful loss=default seed=42 batch_size=8 n_epochs=1 coeff_k_floor=0.0 \
  data_augmentation_loop=$(AUG) threads=1 progress=false hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS)

.PHONY: install test demo bench simulate oracle clean faithfulness batch1 batch2 sweep sweep-tpe dashboard tensorboard notebook bench-samplers bench-samplers-screen bench-scaling bench-compare bench-fidelity science ablation observed ranking real-networks

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -n auto --dist loadgroup -q $(PYTEST_ARGS)

# Simulate (cached), the ceiling, then one batch of four UCB trials at reduced length (7,200 iterations
# each, two at a time), the experiment log and a table of results.
DEMO_AUG ?= 100
demo: $(STAMP)
	$(PYTHON) -m oscsim.simulate simulation=$(SIM)
	$(PYTHON) -m oscsim.oracle simulation=$(SIM)
	$(PYTHON) -m oscsim.train -m sweep=ucb simulation=$(SIM) data_augmentation_loop=$(DEMO_AUG) \
	  '~hydra.sweeper.params.data_augmentation_loop' hydra.sweeper.study_name=demo_$(SIM) \
	  hydra.sweeper.n_trials=4 threads=1 progress=false hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS)

simulate: $(STAMP)
	$(PYTHON) -m oscsim.simulate simulation=$(SIM)

oracle: $(STAMP)
	$(PYTHON) -m oscsim.oracle simulation=$(SIM)

bench: $(STAMP)
	$(PYTHON) scripts/bench.py
	$(PYTHON) scripts/bench.py --batched --compile auto
	$(PYTHON) scripts/bench.py --error-scale

clean:
	rm -rf $(VENV) multirun/* outputs data

# The seed's Batch 1 baseline (Iter 1 Config line, 72,000 iterations) with both MLP_node
# initialisations of the faithful model, on 3 seeds, two runs at a time; then the table.
FAITH_DIR ?= multirun/faithfulness
faithfulness: $(STAMP)
	$(PYTHON) -m oscsim.train -m model=faithful loss=default model.node_init=all_zero,last_layer seed=1,2,3 \
	  lr_k=0.005 lr_node=0.001 lr_sub=0.0005 batch_size=8 n_epochs=1 data_augmentation_loop=1000 \
	  coeff_MLP_node_L1=1.0 coeff_MLP_sub_norm=0.0 coeff_k_floor=0.0 threads=1 progress=false \
	  hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweep.dir=$(FAITH_DIR) \
	  'hydra.sweep.subdir=$${model.node_init}_seed$${seed}'
	$(PYTHON) scripts/summarize_runs.py $(FAITH_DIR)

# The seed log's Batch 1 (Iter 1-4) and Batch 2 (Iter 5-8), exactly; AUG=<n> shortens every trial.
batch1: $(STAMP)
	$(PYTHON) -m oscsim.train -m sweep=lab_batches simulation=$(SIM) $(LAB_ARGS) hydra.sweeper.n_trials=4

batch2: $(STAMP)
	$(PYTHON) -m oscsim.train -m sweep=lab_batches simulation=$(SIM) $(LAB_ARGS) hydra.sweeper.n_trials=8

# A UCB-tree (or TPE) study of N trials on the default model; run again to resume.
sweep: $(STAMP)
	$(PYTHON) -m oscsim.train -m sweep=ucb simulation=$(SIM) hydra.sweeper.n_trials=$(N) threads=1 progress=false \
	  hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS)

sweep-tpe: $(STAMP)
	$(PYTHON) -m oscsim.train -m sweep=tpe simulation=$(SIM) hydra.sweeper.n_trials=$(N) threads=1 progress=false \
	  hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS)

dashboard: $(STAMP)
	$(BIN)/optuna-dashboard $$($(PYTHON) -m oscsim.sweep.settings) --host 127.0.0.1 --port 8080

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir multirun --host 127.0.0.1 --port 6006

notebook: $(STAMP)
	OSCSIM_STUDY=$(STUDY) $(PYTHON) scripts/run_notebook.py notebooks/analyze_study.ipynb

# How a batch's loop speed grows with its number of models, on this device (device auto picks CUDA where present;
# on a GPU: make bench-scaling SIZES=1,16,64,256,512).
SIZES ?= 1,2,4,8,16
bench-scaling: $(STAMP)
	$(PYTHON) scripts/bench_scaling.py --sizes $(SIZES) --check 3

# Training speed of git revisions side by side, alternating (README, Benchmarks): make bench-compare REVS="5390a13 HEAD"
REVS ?= 5390a13 HEAD
bench-compare: $(STAMP)
	$(PYTHON) scripts/bench.py --compare $(REVS) --models faithful default

# The lab's own search: ucb_tree, tpe, gp, random x 5 sampler seeds x 24 full-length trials (about 16 CPU-hours;
# resumable, and `python scripts/bench_samplers.py --problem tiny` is a smoke run).
bench-samplers: $(STAMP)
	$(PYTHON) scripts/bench_samplers.py --jobs $(JOBS)

# The same search read off a model of the kept full-length trials: the samplers and the tree's variants, 30 seeds
# each (210 studies: 83 minutes here, one job at a time beside two trainings; +prior adds 30 studies of ~1 minute,
# most of it fitting the prior); a screen: what pays here is then
# confirmed by bench-samplers.
bench-samplers-screen: $(STAMP)
	$(PYTHON) scripts/bench_samplers.py --problem lab_surrogate --seeds 30 --jobs $(JOBS) \
	  --samplers ucb_tree ucb_tree+gp+cover ucb_tree+ard+cover ucb_tree+ard+cover+fresh ucb_tree+ard+cover+prior tpe gp random

bench-fidelity: $(STAMP)
	$(PYTHON) scripts/bench_fidelity.py

# Every plan of scripts/science.py: the default on rank_50 (5 seeds), network seeds 1-3 (2 seeds each) and
# oscillatory_mixed (3), each against its ceiling; the ablation (faithful -> each model entry -> default, 3 seeds);
# the lab's regimes in REGIMES (ceiling, default 5 seeds, lab's model 3 seeds: one table each); learning S on
# rank_50 (S learned 5 seeds, the lab's S-recovery settings 2). 72,000 iterations a run, JOBS at a time (4-10 min
# per run here). Writes docs/results.md from every finished run; resumable.
REGIMES ?= oscillatory_rank_20 oscillatory_rank_50 oscillatory_rank_70
science: $(STAMP)
	$(PYTHON) scripts/science.py --plan all --regimes $(REGIMES) --jobs $(JOBS)

# The ablation alone (18 runs, 3 of them shared with make science); also rewrites docs/results.md.
ablation: $(STAMP)
	$(PYTHON) scripts/science.py --plan ablation --jobs $(JOBS)

# Observed data on rank_50 (SPEC §9): loss=observed at each noise / stride level against the observed-data oracle.
observed: $(STAMP)
	$(PYTHON) scripts/science.py --plan observed --jobs $(JOBS)

# Does heldout_loss (no truth needed) rank configurations as the true k do? 12 random configurations, Spearman.
# E. coli core with Michaelis-Menten kinetics (SPEC §11): Km known / learned, Adam, the shared MLP_sub; rewrites docs/results.md.
real-networks: $(STAMP)
	$(PYTHON) scripts/science.py --plan real_networks --jobs $(JOBS)

ranking: $(STAMP)
	$(PYTHON) scripts/science.py --plan ranking --jobs $(JOBS)
