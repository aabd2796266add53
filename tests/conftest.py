from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from oscsim.config import CONF_DIR
from oscsim.network import Network
from oscsim.params import SimulationParams

ROOT = Path(__file__).resolve().parents[1]


def regime(name: str, **changes) -> SimulationParams:
    d = yaml.safe_load((ROOT / "conf" / "simulation" / f"{name}.yaml").read_text())
    d.update(changes)
    return SimulationParams.from_mapping(d)


@pytest.fixture
def tiny() -> SimulationParams:
    return regime("tiny")


@pytest.fixture
def compose_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``compose_config(*overrides, hydra=False)``: conf/config.yaml composed by Hydra's compose API, the way
    the commands compose it (as the Lightning-Hydra template's config fixtures do). data_dir points into the
    test's tmp_path, so a test that runs what it composed writes nothing in the repository."""

    def compose_(*overrides: str, hydra: bool = False) -> DictConfig:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"data_dir={tmp_path / 'data'}", *overrides],
                           return_hydra_config=hydra)

    yield compose_
    GlobalHydra.instance().clear()


def hand_network(log_k, substrate_edges, signed_edges, n_met=3, lam=(0.0,), base=(0.0,)) -> Network:
    """A network written out by hand, for tests that check numbers computed on paper."""
    return Network(
        n_metabolites=n_met,
        n_reactions=len(log_k),
        substrate_edges=np.asarray(substrate_edges, dtype=np.int64).reshape(-1, 3),
        signed_edges=np.asarray(signed_edges, dtype=np.int64).reshape(-1, 3),
        metabolite_type=np.zeros(n_met, dtype=np.int64),
        log_k=np.asarray(log_k, dtype=np.float64),
        homeostasis_lambda=np.asarray(lam, dtype=np.float64),
        homeostasis_baseline=np.asarray(base, dtype=np.float64),
    )

