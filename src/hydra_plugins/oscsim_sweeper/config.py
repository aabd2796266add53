"""`hydra/sweeper=oscsim_optuna`: the settings under `hydra.sweeper`."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OscsimOptunaSweeperConf:
    _target_: str = "hydra_plugins.oscsim_sweeper.sweeper.OscsimOptunaSweeper"
    sampler: str = "ucb_tree"  # ucb_tree | tpe | random | grid
    study_name: Optional[str] = None  # default: <regime>_<sampler>
    storage: Optional[str] = None  # default: sqlite:///<multirun root>/oscsim.db (one file, every study)
    n_trials: int = 8  # trials in the study (running the command again resumes up to this)
    n_parallel: int = 4  # trials per batch, launched together (the lab's slots)
    n_iter_block: int = 12
    ucb_c: float = 1.414
    seed: int = 0  # sampler seed
    objectives: List[str] = field(default_factory=lambda: ["rate_constants_R2", "test_R2"])
    directions: List[str] = field(default_factory=lambda: ["maximize", "maximize"])
    params: Dict[str, Any] = field(default_factory=dict)  # search space, Hydra's sweep grammar
    first_batch_params: Optional[List[str]] = None  # UCB: parameters of a block's initial spread
    heartbeat_interval: Optional[int] = 30  # seconds; a worker silent for longer is failed and retried
    grace_period: Optional[int] = None
    max_retry: int = 1
    pruner: Optional[str] = None  # none | median | wilcoxon
    enqueue: List[Any] = field(default_factory=list)  # configurations to run first ({id, params, attrs})


ConfigStore.instance().store(group="hydra/sweeper", name="oscsim_optuna", node=OscsimOptunaSweeperConf,
                             provider="oscsim")
