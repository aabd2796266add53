"""`hydra/sweeper=oscsim_optuna`: the settings under `hydra.sweeper` (declared in oscsim.sweep.settings)."""
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from oscsim.sweep.settings import SweepSettings


@dataclass
class OscsimOptunaSweeperConf(SweepSettings):
    _target_: str = "hydra_plugins.oscsim_sweeper.sweeper.OscsimOptunaSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="oscsim_optuna", node=OscsimOptunaSweeperConf,
                             provider="oscsim")
