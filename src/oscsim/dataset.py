"""Generate a simulation dataset once and cache it on disk, keyed by a hash of its settings.

Each array is its own .npy file written atomically (temp file, then rename); `manifest.json` holds their
SHA-256 and is written last, so a dataset is complete exactly when its manifest verifies. Generation runs
under an exclusive file lock, so processes that start together generate it once and the rest read it.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .dynamics import Kinetics, activity_rank, drive_signal, initial_concentrations, integrate
from .files import atomic_write as _atomic_write
from .files import locked as _locked
from .files import write_json as _write_json
from .identifiability import michaelis_menten_identifiability
from .network import Network, build_network, unidentifiable_reactions
from .observation import Observation, observe
from .params import ObservationParams, SimulationParams

ARRAYS = (
    "concentrations", "dcdt", "metabolite_type", "substrate_edges", "signed_edges", "S", "log_k",
    "homeostasis_lambda", "homeostasis_baseline", "heldout_concentrations",
)
# Arrays only some networks have (Michaelis-Menten's Km, boundary species, an SBML file's names).
OPTIONAL_ARRAYS = ("log_km", "boundary", "boundary_products", "species", "reactions")
DRIVE_SEED_OFFSET = 31  # the drive of a trajectory started with initial seed s is drawn from RandomState(s + this)
# The held-out trajectory: the same network and k from the initial concentrations the lab would draw with
# seed + HELDOUT_SEED_OFFSET. Never trained on; only the held-out rollout metrics read it.
HELDOUT_SEED_OFFSET = 1000


@dataclass
class Dataset:
    params: SimulationParams
    network: Network
    concentrations: np.ndarray  # (n_frames + 1, n_met) float32
    dcdt: np.ndarray | None  # (n_frames + 1, n_met) float32, exact derivative at each frame (None: not known)
    summary: dict
    heldout: np.ndarray | None = None  # (n_frames + 1, n_met) float32, another initial condition
    path: Path | None = None
    generated: bool = False  # True when this call simulated it (False: read from the cache)
    observation: Observation | None = None  # what training sees (noisy, strided); set by `observed`
    _mm_identifiable: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def has_truth(self) -> bool:
        """True when the true log10 k are known (always for a simulated regime; optional in a user's data)."""
        return bool(np.isfinite(self.network.log_k).all())

    @property
    def derivatives_observed(self) -> bool:
        """True when training may use the exact dc/dt: it exists and the observation is the clean series."""
        return self.dcdt is not None and (self.observation is None or not self.observation.derivative_free)

    @property
    def S(self) -> np.ndarray:
        return self.network.S

    def michaelis_menten_identifiable(self) -> tuple[np.ndarray, np.ndarray]:
        """(Vmax, Km) identifiable together on the training trajectory (`identifiability`), computed once: the
        metrics read it at every evaluation during training, the figures after."""
        if self._mm_identifiable is None:
            self._mm_identifiable = michaelis_menten_identifiability(self.network, self.concentrations)
        return self._mm_identifiable


def build(p: SimulationParams) -> Network:
    """The network of `p`: the lab's generator, or seeded kinetics on an SBML file's topology."""
    if p.network == "sbml":
        from .sbml import sbml_network

        return sbml_network(p)
    return build_network(p)


def forcing(net: Network, p: SimulationParams, seed: int, c0: torch.Tensor):
    """The driven boundary species of a trajectory started with initial seed `seed` (None: none)."""
    idx = np.flatnonzero(net.boundary_mask)
    if not len(idx) or not p.drive:
        return None
    values = drive_signal(seed + DRIVE_SEED_OFFSET, p.n_frames, c0[idx].double().numpy())
    return torch.as_tensor(idx), torch.as_tensor(values, dtype=c0.dtype)


def simulate(p: SimulationParams, progress: bool = False) -> Dataset:
    """Build the network and Euler-integrate it in float32, as the lab does (boundary species follow their drive)."""
    net = build(p)
    f = Kinetics(net, dtype=torch.float32, flux_limit_dt=p.delta_t if p.flux_limit else None)
    runs = []
    for seed in (p.seed, p.seed + HELDOUT_SEED_OFFSET):
        c0 = initial_concentrations(p.n_metabolites, seed, p.concentration_min, p.concentration_max)
        c, d = integrate(f, c0, p.n_frames, p.delta_t, clamp=True, progress=progress, forced=forcing(net, p, seed, c0))
        c, d = c.numpy(), d.numpy()
        bad = ~np.all(np.isfinite(c), axis=1)
        if bad.any():
            what = "" if seed == p.seed else f" (held-out trajectory, initial seed {seed})"
            raise ValueError(f"simulation diverged at frame {int(np.argmax(bad))}{what} (non-finite concentrations): "
                             f"lower simulation.delta_t={p.delta_t} or simulation.log_k_max={p.log_k_max}")
        runs.append((c, d))
    (c, d), (heldout, _) = runs
    return Dataset(p, net, c, d, summarize(p, net, c), heldout)


def observed(ds: Dataset, o: ObservationParams, substeps: int = 1) -> Dataset:
    """`ds` with its observation set: every o.stride-th frame with noise o.noise (seeded by the dataset's seed);
    the model integrates delta_t / substeps, o.stride * substeps steps between two observations."""
    ds.observation = Observation(observe(ds.concentrations, o.noise, o.stride, ds.params.seed),
                                 ds.params.delta_t / substeps, o.stride * substeps, o.noise, o.stride)
    return ds


def summarize(p: SimulationParams, net: Network, c: np.ndarray) -> dict:
    rank, _ = activity_rank(c)
    unident = unidentifiable_reactions(net.substrate_edges, net.n_reactions)
    return {
        "regime": p.name,
        "n_frames": int(p.n_frames),
        "n_metabolites": int(p.n_metabolites),
        "n_reactions": int(p.n_reactions),
        "activity_rank": rank,
        "concentration_min": float(c.min()),
        "concentration_max": float(c.max()),
        "fraction_zero": float(np.mean(c == 0)),
        "n_unidentifiable": len(unident),
        "unidentifiable": unident,
        "substrate_powers": sorted({int(s) for s in net.substrate_edges[:, 2]}),
        # real networks only (a regime's summary stays what it was)
        **({"kinetics": net.kinetics} if net.log_km is not None else {}),
        **({"n_boundary": int(net.boundary_mask.sum()), "driven": bool(p.drive)} if net.boundary is not None else {}),
        **({"sbml_dropped": sbml_dropped(p)} if p.network == "sbml" else {}),
    }


def sbml_dropped(p: SimulationParams) -> dict:
    """What reading the SBML file of `p` dropped, reason -> number of reactions."""
    from .sbml import topology

    return dict(topology(p).dropped)


def dataset_dir(p: SimulationParams, root: str | os.PathLike) -> Path:
    return Path(root) / f"{p.name}-{p.digest()}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(ds: Dataset, d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "concentrations": ds.concentrations, "dcdt": ds.dcdt, "S": ds.network.S,
        "metabolite_type": ds.network.metabolite_type, "substrate_edges": ds.network.substrate_edges,
        "signed_edges": ds.network.signed_edges, "log_k": ds.network.log_k,
        "homeostasis_lambda": ds.network.homeostasis_lambda,
        "homeostasis_baseline": ds.network.homeostasis_baseline,
        "heldout_concentrations": ds.heldout,
    }
    net = ds.network
    optional = {"log_km": net.log_km, "boundary": net.boundary, "boundary_products": net.boundary_products,
                "species": np.asarray(net.species, dtype=str),
                "reactions": np.asarray(net.reactions, dtype=str)}
    arrays.update({n: a for n, a in optional.items() if a is not None and len(a)})
    for name, arr in arrays.items():
        _atomic_write(d / f"{name}.npy", lambda fh, a=arr: np.save(fh, a))
    _write_json(d / "summary.json", ds.summary)
    _write_json(d / "params.json", ds.params.as_dict())
    files = [f"{n}.npy" for n in arrays] + ["summary.json", "params.json"]
    _write_json(d / "manifest.json", {f: _sha256(d / f) for f in files})
    ds.path = d


def load(d: Path) -> Dataset:
    """Load a cached dataset; raises ValueError if any file is missing, truncated or altered."""
    try:
        manifest = json.loads((d / "manifest.json").read_text())
        for f, digest in manifest.items():
            if _sha256(d / f) != digest:
                raise ValueError(f"{d / f}: checksum mismatch")
        names = [*ARRAYS, *(n for n in OPTIONAL_ARRAYS if f"{n}.npy" in manifest)]
        a = {n: np.load(d / f"{n}.npy", allow_pickle=False) for n in names}
        p = SimulationParams.from_mapping(json.loads((d / "params.json").read_text()))
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"cached dataset {d} is unreadable: {e}") from e
    net = Network(
        n_metabolites=p.n_metabolites, n_reactions=p.n_reactions, substrate_edges=a["substrate_edges"],
        signed_edges=a["signed_edges"], metabolite_type=a["metabolite_type"], log_k=a["log_k"],
        homeostasis_lambda=a["homeostasis_lambda"], homeostasis_baseline=a["homeostasis_baseline"],
        log_km=a.get("log_km"), boundary=a.get("boundary"), boundary_products=a.get("boundary_products"),
        species=tuple(a["species"].tolist()) if "species" in a else (),
        reactions=tuple(a["reactions"].tolist()) if "reactions" in a else (),
    )
    return Dataset(p, net, a["concentrations"], a["dcdt"], summary, a["heldout_concentrations"], d)


def load_or_simulate(p: SimulationParams, root: str | os.PathLike, progress: bool = False) -> Dataset:
    """The cached dataset for `p` under `root`, generated (once, under a lock) if absent or corrupt."""
    d = dataset_dir(p, root)
    with _locked(Path(root) / f".{d.name}.lock"):
        if (d / "manifest.json").exists():
            try:
                return load(d)
            except ValueError as e:
                warnings.warn(f"{e}; regenerating", stacklevel=2)
        ds = simulate(p, progress=progress)
        save(ds, d)
        ds.generated = True
        return ds
