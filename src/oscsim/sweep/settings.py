"""The settings of a sweep (`hydra.sweeper.*`), declared once: the Hydra plugin's config node extends this
dataclass, and the runner reads it. Also where a sweep's study lives by default."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# One SQLite file for every study under a multirun root, so one dashboard shows them all.
STORAGE_FILE = "oscsim.db"
MULTIRUN_ROOT = "multirun"  # Hydra's multirun root in conf/ (hydra.sweep.dir = multirun/<study>)


@dataclass
class SweepSettings:
    sampler: str = "ucb_tree"  # ucb_tree | tpe | random | grid
    study_name: str | None = None  # default: <regime>_<sampler>
    storage: str | None = None  # default: default_storage(hydra.sweep.dir)
    n_trials: int = 8  # trials in the study (running the command again resumes up to this)
    n_parallel: int = 4  # trials per batch, launched together (the lab's slots)
    n_iter_block: int = 12
    ucb_c: float = 1.414
    ucb_guide: str = "none"  # ucb_tree: none (the lab's move statistics) | gp (a GP of the trials orders the moves) | gp_ard (per-parameter length scales)
    ucb_first_batch: str = "lab"  # ucb_tree: lab (the seed's Batch 1 spread) | cover (baseline + a Latin hypercube)
    ucb_rerun_root: bool = True  # ucb_tree: a later block's first batch retrains its root | false: never train a config twice
    ucb_exploit_beta: float = 1.0  # ucb_tree with a guide: exploit children by GP mean + beta sd (0: the mean alone)
    ucb_prior: list[str] = field(default_factory=list)  # ucb_tree with a guide: earlier studies' JSON files or folders, the guide's prior
    seed: int = 0  # sampler seed
    objectives: list[str] = field(default_factory=lambda: ["rate_constants_R2", "test_R2"])
    directions: list[str] = field(default_factory=lambda: ["maximize", "maximize"])
    params: dict[str, Any] = field(default_factory=dict)  # search space, Hydra's sweep grammar
    first_batch_params: list[str] | None = None  # UCB: parameters of a block's initial spread
    heartbeat_interval: int | None = 30  # seconds; a worker silent for longer is failed and retried
    grace_period: int | None = None
    max_retry: int = 1
    pruner: str | None = None  # none | median | wilcoxon
    enqueue: list[Any] = field(default_factory=list)  # configurations to run first ({id, params, attrs})


# Metrics for which lower is better: a sweep must minimise them (checked when the study opens).
LOWER_IS_BETTER = ("heldout_loss", "final_loss", "final_loss_per_sample", "n_outliers", "n_outliers_identifiable")


def objective_sign(name: str) -> float:
    """+1 when larger values of the metric are better, -1 when smaller are."""
    return -1.0 if name in LOWER_IS_BETTER else 1.0


def default_storage(sweep_dir: str | Path) -> str:
    """The study's storage when none is set: one SQLite file in the directory above the sweep's."""
    return f"sqlite:///{Path(sweep_dir).resolve().parent}/{STORAGE_FILE}"


def default_study_name(regime: str, sampler: str) -> str:
    return f"{regime}_{sampler}"


if __name__ == "__main__":  # `make dashboard`: the default storage of sweeps run from here
    print(default_storage(Path(MULTIRUN_ROOT) / "any_study"))
