from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

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
