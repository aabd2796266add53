"""A user's own data set on disk (README "Your own data"): one .npz file or a directory of CSV files holding
`concentrations` (frames x metabolites), `S` (metabolites x reactions, net signed), `substrate_edges` (rows:
metabolite, reaction, order) and optionally the truth, for scoring only: `log_k`, `metabolite_type`,
`homeostasis_lambda`, `homeostasis_baseline`. Loading validates everything and names the file and the
problem in one line; `export` writes any data set in the same layout. Pure NumPy, no torch."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .files import write_json, write_text
from .network import Network
from .params import ConfigError, SimulationParams

REQUIRED = ("concentrations", "S", "substrate_edges")
OPTIONAL = ("log_k", "metabolite_type", "homeostasis_lambda", "homeostasis_baseline")
HEADERS = {"substrate_edges": "metabolite,reaction,order"}


class DataFileError(ConfigError):
    """A user's data file is missing or inconsistent; the message is one line naming the file."""


@dataclass(frozen=True)
class ObservedData:
    network: Network  # log_k / homeostasis are NaN where the file does not give them
    concentrations: np.ndarray  # (frames, n_met) float32
    has_truth: bool  # log_k given
    has_homeostasis: bool  # metabolite_type and homeostasis_lambda / _baseline given


def _read_csv(f: Path) -> np.ndarray:
    """Numbers separated by commas, one row per line; a first line with anything but numbers is a header."""
    lines = [ln for ln in f.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines:
        try:
            [float(x) for x in lines[0].split(",")]
        except ValueError:
            lines = lines[1:]
    try:
        rows = [[float(x) for x in ln.split(",")] for ln in lines]
    except ValueError as e:
        raise DataFileError(f"{f}: not a table of numbers ({e})") from None
    if len({len(r) for r in rows}) > 1:
        raise DataFileError(f"{f}: rows have different numbers of columns ({sorted({len(r) for r in rows})})")
    return np.array(rows, dtype=np.float64)


def read_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of an .npz file or a CSV directory, and the file each came from (for error messages)."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"simulation.path={path}: no such file or directory")
    arrays, where = {}, {}
    if path.is_dir():
        for name in REQUIRED + OPTIONAL:
            f = path / f"{name}.csv"
            if f.exists():
                arrays[name], where[name] = _read_csv(f), str(f)
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                for name in REQUIRED + OPTIONAL:
                    if name in z.files:
                        arrays[name], where[name] = np.asarray(z[name], dtype=np.float64), f"{path}:{name}"
        except (OSError, ValueError) as e:
            raise DataFileError(f"{path}: not a readable .npz file ({e})") from None
    for name in REQUIRED:
        if name not in arrays:
            raise DataFileError(f"{path}: missing {name} ({name}.csv in a directory, or an array {name!r} in an .npz)")
    return arrays, where


def _check(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise DataFileError(f"{where}: {what}")


def _integers(a: np.ndarray, where: str, what: str) -> np.ndarray:
    _check(bool(np.all(np.isfinite(a)) and np.all(a == np.round(a))), where, f"{what} must be integers")
    return np.round(a).astype(np.int64)


def load_observed(path: str | Path) -> ObservedData:
    """Read and validate a user's data set. Raises DataFileError (one line, naming the file) on any problem."""
    a, where = read_arrays(path)
    c = a["concentrations"]
    _check(c.ndim == 2 and c.shape[0] >= 11 and c.shape[1] >= 1, where["concentrations"],
           f"must be a table of at least 11 frames (rows) x 1 metabolite (columns), got shape {c.shape}")
    bad = ~np.isfinite(c)
    _check(not bad.any(), where["concentrations"], f"{int(bad.sum())} values are NaN or infinite (first at frame "
           f"{np.argwhere(bad)[0][0] if bad.any() else 0}, metabolite {np.argwhere(bad)[0][1] if bad.any() else 0})")
    neg = c < 0
    _check(not neg.any(), where["concentrations"], f"{int(neg.sum())} negative concentrations (first at frame "
           f"{np.argwhere(neg)[0][0] if neg.any() else 0}, metabolite {np.argwhere(neg)[0][1] if neg.any() else 0})")
    n_met = c.shape[1]
    S = np.atleast_2d(a["S"])
    _check(S.ndim == 2 and S.shape[0] == n_met, where["S"],
           f"shape {S.shape} does not match concentrations' {n_met} metabolites (S is metabolites x reactions)")
    S = _integers(S, where["S"], "coefficients")
    n_rxn = S.shape[1]
    e = a["substrate_edges"].reshape(-1, 3) if a["substrate_edges"].size else np.zeros((0, 3))
    _check(a["substrate_edges"].size % 3 == 0, where["substrate_edges"], "must have 3 columns: metabolite, reaction, order")
    e = _integers(e, where["substrate_edges"], "metabolite, reaction and order")
    for col, name, n in ((0, "metabolite", n_met), (1, "reaction", n_rxn)):
        out = (e[:, col] < 0) | (e[:, col] >= n)
        _check(not out.any(), where["substrate_edges"],
               f"{name} index {e[out, col][0] if out.any() else 0} outside S (allowed 0..{n - 1})")
    _check(bool(np.all(e[:, 2] >= 1)), where["substrate_edges"], "order must be >= 1")
    pairs = {(int(m), int(r)) for m, r, _ in e}
    _check(len(pairs) == len(e), where["substrate_edges"], "a (metabolite, reaction) pair is listed twice")
    mets, rxns = np.nonzero(S)
    signed = np.stack([mets, rxns, S[mets, rxns]], 1).astype(np.int64)

    log_k = np.full(n_rxn, np.nan)
    if "log_k" in a:
        log_k = a["log_k"].reshape(-1)
        _check(log_k.shape == (n_rxn,) and bool(np.all(np.isfinite(log_k))), where["log_k"],
               f"must be {n_rxn} finite values (one per reaction of S), got {log_k.size}")
    types = np.zeros(n_met, np.int64)
    if "metabolite_type" in a:
        t = a["metabolite_type"].reshape(-1)
        _check(t.shape == (n_met,), where["metabolite_type"], f"must be {n_met} values (one per metabolite), got {t.size}")
        types = _integers(t, where["metabolite_type"], "types")
        _check(bool(np.all(types >= 0)), where["metabolite_type"], "types must be >= 0")
    n_types = int(types.max()) + 1
    lam, base = np.full(n_types, np.nan), np.full(n_types, np.nan)
    for name in ("homeostasis_lambda", "homeostasis_baseline"):
        if name in a:
            v = a[name].reshape(-1)
            _check(v.shape == (n_types,) and bool(np.all(np.isfinite(v))), where[name],
                   f"must be {n_types} finite values (one per metabolite type), got {v.size}")
            (lam if name == "homeostasis_lambda" else base)[:] = v
    net = Network(n_metabolites=n_met, n_reactions=n_rxn, substrate_edges=e, signed_edges=signed,
                  metabolite_type=types, log_k=log_k, homeostasis_lambda=lam, homeostasis_baseline=base)
    return ObservedData(net, c.astype(np.float32), "log_k" in a,
                        bool(np.isfinite(lam).all() and np.isfinite(base).all()))


def _write_csv(f: Path, a: np.ndarray, header: str | None, fmt: str) -> None:
    a = np.asarray(a).reshape(len(a), -1)
    text = (header + "\n" if header else "") + "\n".join(",".join(fmt % x for x in row) for row in a) + "\n"
    write_text(f, text)


def export(directory: str | Path, net: Network, concentrations: np.ndarray, info: dict) -> Path:
    """Write a data set in the CSV layout `load_observed` reads (the truth included), plus info.json (where it
    came from, its time step). Returns the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    c = np.asarray(concentrations)
    _write_csv(d / "concentrations.csv", c, ",".join(f"m{i}" for i in range(c.shape[1])), "%.9g")
    _write_csv(d / "S.csv", net.S, ",".join(f"r{j}" for j in range(net.n_reactions)), "%d")
    _write_csv(d / "substrate_edges.csv", net.substrate_edges, HEADERS["substrate_edges"], "%d")
    _write_csv(d / "log_k.csv", net.log_k, "log10_k", "%.17g")
    _write_csv(d / "metabolite_type.csv", net.metabolite_type, "type", "%d")
    _write_csv(d / "homeostasis_lambda.csv", net.homeostasis_lambda, "lambda", "%.17g")
    _write_csv(d / "homeostasis_baseline.csv", net.homeostasis_baseline, "baseline", "%.17g")
    write_json(d / "info.json", info)
    return d


# The keys of `simulation=observed` (conf/simulation/observed.yaml).
USER_DATA_KEYS = ("name", "path", "delta_t", "substeps", "log_k_min", "log_k_max", "seed", "noise", "stride")


def _digest(path: Path) -> str:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


def user_data(sim: Mapping[str, Any]) -> tuple[SimulationParams, ObservedData]:
    """The simulation-group settings of a user's data set (`simulation=observed`) as SimulationParams (the
    generator's own keys get neutral values: nothing is generated), and the validated data."""
    unknown = sorted(set(sim) - set(USER_DATA_KEYS))
    if unknown:
        raise ConfigError(f"simulation.{unknown[0]}: unknown key for a user's data set "
                          f"(allowed: {', '.join(USER_DATA_KEYS)})")
    if sim.get("path") in (None, "???", ""):
        raise ConfigError("simulation.path: required (an .npz file or a directory of CSV files, README 'Your own data')")
    path = Path(str(sim["path"])).expanduser()
    delta_t = sim.get("delta_t")
    if not isinstance(delta_t, (int, float)) or isinstance(delta_t, bool) or delta_t <= 0:
        raise ConfigError(f"simulation.delta_t={delta_t}: must be > 0 (the time between two rows of concentrations)")
    substeps = sim.get("substeps", 1)
    if not isinstance(substeps, int) or isinstance(substeps, bool) or not 1 <= substeps <= 1000:
        raise ConfigError(f"simulation.substeps={substeps}: must be an integer in [1, 1000] (model steps per row)")
    data = _load_cached(path, path.stat().st_mtime_ns if path.exists() else 0)
    net, c = data.network, data.concentrations
    p = SimulationParams(
        name=str(sim.get("name", "observed")), n_metabolites=net.n_metabolites, n_reactions=net.n_reactions,
        n_metabolite_types=int(net.metabolite_type.max()) + 1, n_frames=len(c) - 1, delta_t=float(delta_t),
        seed=int(sim.get("seed", 0)), concentration_min=float(c.min()), concentration_max=float(c.max()),
        log_k_min=float(sim.get("log_k_min", -2.0)), log_k_max=float(sim.get("log_k_max", -1.0)),
        cycle_fraction=0.0, cycle_length=2, max_metabolites_per_reaction=2,
        homeostasis_lambda=tuple(net.homeostasis_lambda) if data.has_homeostasis else (),
        homeostasis_baseline=tuple(net.homeostasis_baseline) if data.has_homeostasis else (),
        source=f"{path.resolve()}#{_digest(path)}",
    )
    p.validate()
    return p, data


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int) -> ObservedData:
    """load_observed, once per file version (validate, the sweeper and training all ask for it)."""
    return load_observed(path)
