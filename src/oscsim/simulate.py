"""`python -m oscsim.simulate simulation=<regime>`: build, integrate and cache a dataset, draw its figures,
print its summary."""
from __future__ import annotations

import json

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from .cli import hydra_entry
from .config import simulation_params
from .dataset import Dataset, load_or_simulate


def dataset_for(cfg: DictConfig, progress: bool = False) -> Dataset:
    """The cached dataset of cfg.simulation under cfg.data_dir (generated on first use)."""
    return load_or_simulate(simulation_params(cfg), to_absolute_path(cfg.data_dir), progress=progress)


def run(cfg: DictConfig) -> dict:
    from .figures_data import dataset_figures

    ds = dataset_for(cfg, progress=bool(cfg.get("progress", True)))
    if cfg.get("plots", True):
        dataset_figures(ds, ds.path / "figures")
    summary = {k: v for k, v in ds.summary.items()}
    print(f"dataset: {ds.path}")
    print(json.dumps(summary, indent=None))
    return summary


main = hydra_entry(run)

if __name__ == "__main__":
    main()
