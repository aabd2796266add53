"""`python -m oscsim.simulate simulation=<regime> [export=<dir>] [export_sbml=<file>]`: build, integrate and cache
a dataset, draw its figures, print its summary; `export` writes what is observed of it (`simulation.noise`,
`.stride`) in the CSV layout a user's own data set has (README "Your own data"); `export_sbml` writes the network
with its kinetic laws and boundary inputs as SBML (README "Real networks")."""
from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from .cli import hydra_entry
from .config import is_user_data, observation_params, simulation_params
from .dataset import Dataset, load_or_simulate, observed, summarize


def dataset_for(cfg: DictConfig, progress: bool = False) -> Dataset:
    """The dataset of cfg.simulation with its observation set: a simulated regime (cached under cfg.data_dir,
    generated on first use) or a user's data set (`simulation.path`)."""
    if is_user_data(cfg.simulation):  # read, validated and hashed once
        from .datafile import user_data

        p, data = user_data(cfg.simulation)
        ds = Dataset(p, data.network, data.concentrations, None, summarize(p, data.network, data.concentrations),
                     path=Path(to_absolute_path(str(cfg.simulation.path))))
        return observed(ds, observation_params(cfg), int(cfg.simulation.get("substeps", 1)))
    ds = load_or_simulate(simulation_params(cfg), to_absolute_path(cfg.data_dir), progress=progress)
    return observed(ds, observation_params(cfg))


def run(cfg: DictConfig) -> dict:
    from .figures_data import dataset_figures

    ds = dataset_for(cfg, progress=bool(cfg.get("progress", True)))
    if cfg.get("plots", True) and not ds.params.user_data:
        dataset_figures(ds, ds.path / "figures")
    summary = {k: v for k, v in ds.summary.items()}
    print(f"dataset: {ds.path}")
    print(json.dumps(summary, indent=None))
    if cfg.get("export"):
        from .datafile import export

        o = ds.observation
        d = export(to_absolute_path(str(cfg.export)), ds.network, o.c, {
            "source": (ds.params.source if ds.params.user_data else "") or f"simulation={ds.params.name} simulation.seed={ds.params.seed}",
            "delta_t": o.interval, "substeps": o.substeps,
            "noise": o.noise, "stride": o.stride, "n_frames": len(o.c) - 1})
        print(f"exported {len(o.c)} frames x {ds.network.n_metabolites} metabolites (delta_t {o.interval:g}) to {d}")
    if cfg.get("export_sbml"):
        from .sbml import export_network

        f = export_network(to_absolute_path(str(cfg.export_sbml)), ds.network, ds.concentrations, ds.params.delta_t,
                           ds.params.drive, name=ds.params.name)
        print(f"exported the network ({ds.network.kinetics}, {int(ds.network.boundary_mask.sum())} boundary species) "
              f"as SBML to {f}")
    return summary


main = hydra_entry(run)

if __name__ == "__main__":
    main()
