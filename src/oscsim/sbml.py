"""SBML in and out (SPEC §11) with python-libsbml: a network's topology read from a file of any SBML level and
version, FBA pseudo-reactions filtered, and a simulated or learned network written back as a kinetic model.

Reading gives a `Topology` (plain Python, no kinetics); `network.sbml_network` turns it into a seeded
`Network`. libsbml is imported here only, so the science modules never need it."""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .network import Network, topology_network
from .params import OBSERVATION_KEYS, ConfigError, SimulationParams

# FBA models' pseudo-reactions (SPEC §11), matched on the id without SBML's `R_` prefix: exchange, demand,
# sink, biomass, ATP maintenance.
PSEUDO_REACTION = re.compile(r"^(EX_|DM_|SK_|sink_|ATPM)|biomass", re.IGNORECASE)
MAX_ORDER = 4  # reactions whose substrate order (sum of reactant coefficients) exceeds this are dropped


class SBMLError(ConfigError):
    """An SBML file that cannot be read or holds what oscsim does not support; one line naming file and element."""


@dataclass(frozen=True)
class Topology:
    """Species and reactions of a kinetic network. Reaction j: `reactants[j]` and `products[j]` map a species
    index to its (integer) coefficient. A `boundary` species is an external source: reactions read it, none
    changes it (SBML boundaryCondition, or the species an FBA model's exchange reactions exchange)."""

    species: tuple[str, ...]
    boundary: tuple[bool, ...]
    reactions: tuple[str, ...]
    reactants: tuple[dict[int, int], ...]
    products: tuple[dict[int, int], ...]
    dropped: dict  # reason -> number of reactions dropped


def resolve_path(path: str) -> Path:
    """`cobra:<name>` is a model COBRApy ships (`cobra:textbook` is E. coli core); anything else a file."""
    if path.startswith("cobra:"):
        spec = importlib.util.find_spec("cobra")
        if spec is None or spec.origin is None:
            raise SBMLError(f"simulation.path={path}: needs COBRApy (pip install cobra), which ships the model")
        name = path.split(":", 1)[1]
        f = Path(spec.origin).parent / "data" / f"{name}.xml.gz"
        if not f.exists():
            shipped = sorted(p.name[: -len(".xml.gz")] for p in f.parent.glob("*.xml.gz"))
            raise SBMLError(f"simulation.path={path}: COBRApy ships no such model (has: {', '.join(shipped)})")
        return f
    f = Path(path)
    if not f.is_file():
        raise SBMLError(f"simulation.path={path}: no such SBML file")
    return f


def file_digest(path: str) -> str:
    return hashlib.sha256(resolve_path(path).read_bytes()).hexdigest()[:12]


def _document(path: str):
    import libsbml

    f = resolve_path(path)
    raw = f.read_bytes()
    if f.suffix == ".gz":
        raw = gzip.decompress(raw)
    doc = libsbml.readSBMLFromString(raw.decode("utf-8", errors="replace"))
    for i in range(doc.getNumErrors()):
        e = doc.getError(i)
        if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR:
            msg = e.getMessage().strip().splitlines()[0] if e.getMessage().strip() else e.getShortMessage()
            raise SBMLError(f"{path}: line {e.getLine()}: {msg}")
    if doc.getModel() is None:
        raise SBMLError(f"{path}: no <model> element")
    return doc


def _coefficient(path: str, reaction: str, ref) -> float:
    if hasattr(ref, "isSetStoichiometryMath") and ref.isSetStoichiometryMath():
        raise SBMLError(f"{path}: reaction {reaction}: species {ref.getSpecies()} has stoichiometryMath (unsupported)")
    if ref.getLevel() >= 3 and not ref.isSetStoichiometry():
        raise SBMLError(f"{path}: reaction {reaction}: species {ref.getSpecies()} has no stoichiometry")
    return float(ref.getStoichiometry())


def read_sbml(path: str, max_reactions: int = 0) -> Topology:
    """The kinetic topology of an SBML file: FBA pseudo-reactions dropped by id, reactions of substrate order
    outside [1, MAX_ORDER], with fewer than two species or with a non-integer coefficient dropped; species an exchange reaction exchanged become
    boundary species; `max_reactions` > 0 keeps a connected subgraph of that many reactions grown breadth-first
    from the highest-degree metabolite (SPEC §11)."""
    model = _document(path).getModel()
    ids = [s.getId() for s in model.getListOfSpecies()]
    index = {s: i for i, s in enumerate(ids)}
    boundary = {i for i, s in enumerate(model.getListOfSpecies()) if s.getBoundaryCondition()}
    dropped: dict[str, int] = {}
    kept: list[tuple[str, dict[int, int], dict[int, int]]] = []
    for r in model.getListOfReactions():
        rid = r.getId()
        sides = []
        for refs in (r.getListOfReactants(), r.getListOfProducts()):
            side: dict[int, float] = {}
            for ref in refs:
                if ref.getSpecies() not in index:
                    raise SBMLError(f"{path}: reaction {rid}: species {ref.getSpecies()} is not declared")
                i = index[ref.getSpecies()]
                side[i] = side.get(i, 0.0) + _coefficient(path, rid, ref)
            sides.append(side)
        subs, prods = sides
        if PSEUDO_REACTION.search(re.sub(r"^R_", "", rid)):
            dropped["pseudo-reaction"] = dropped.get("pseudo-reaction", 0) + 1
            if not prods and len(subs) == 1:  # an exchange: its species is the environment's
                boundary.update(subs)
            continue
        coefficients = [*subs.values(), *prods.values()]
        why = ("non-integer coefficient" if any(c != round(c) or c <= 0 for c in coefficients)
               else f"substrate order outside [1, {MAX_ORDER}]" if not 1 <= sum(subs.values()) <= MAX_ORDER
               else "fewer than 2 species" if len(set(subs) | set(prods)) < 2 else None)
        if why:  # the network's edges carry integer coefficients (a 1/2 O2 would be a fractional rate exponent)
            dropped[why] = dropped.get(why, 0) + 1
            continue
        kept.append((rid, {i: int(s) for i, s in subs.items()}, {i: int(s) for i, s in prods.items()}))
    if max_reactions and len(kept) > max_reactions:
        dropped["outside the connected subgraph"] = len(kept) - max_reactions
        kept = _connected_subgraph(kept, max_reactions)
    if not kept:
        raise SBMLError(f"{path}: no reaction left after filtering ({dropped})")
    used = sorted({i for _, s, p in kept for i in (*s, *p)})  # species no kept reaction touches are dropped
    new = {old: n for n, old in enumerate(used)}
    return Topology(
        species=tuple(ids[i] for i in used), boundary=tuple(i in boundary for i in used),
        reactions=tuple(r for r, _, _ in kept),
        reactants=tuple({new[i]: s for i, s in subs.items()} for _, subs, _ in kept),
        products=tuple({new[i]: s for i, s in prods.items()} for _, _, prods in kept), dropped=dropped)


def _connected_subgraph(reactions: list, n: int) -> list:
    """The first n reactions met breadth-first over the species-reaction graph from the highest-degree species
    (ties: the first declared), in their original order."""
    touches = [set(s) | set(p) for _, s, p in reactions]
    by_species: dict[int, list[int]] = {}
    for j, t in enumerate(touches):
        for i in t:
            by_species.setdefault(i, []).append(j)
    start = max(sorted(by_species), key=lambda i: len(by_species[i]))
    seen_s, taken, queue = {start}, [], deque([start])
    taken_set: set[int] = set()
    while queue and len(taken) < n:
        i = queue.popleft()
        for j in by_species[i]:
            if j in taken_set or len(taken) >= n:
                continue
            taken.append(j)
            taken_set.add(j)
            for k in sorted(touches[j] - seen_s):
                seen_s.add(k)
                queue.append(k)
    return [reactions[j] for j in sorted(taken)]


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, digest: str, max_reactions: int) -> Topology:
    return read_sbml(path, max_reactions)


def sbml_params(sim: Mapping[str, Any]) -> tuple[SimulationParams, Topology]:
    """`simulation=sbml`'s settings completed from its file: the numbers of species and reactions it has after
    filtering, and its content hash in `source` (so an edited file is a new dataset)."""
    path = str(sim.get("path") or "")
    if path in ("", "???"):
        raise ConfigError("simulation.path: required with simulation.network=sbml (an SBML file, or cobra:<name>)")
    if not path.startswith("cobra:"):
        path = str(Path(path).resolve())
    digest = file_digest(path)
    top = _read_cached(path, digest, int(sim.get("max_reactions") or 0))
    fixed = {"path": path, "n_metabolites": len(top.species), "n_reactions": len(top.reactions),
             "n_metabolite_types": 1, "homeostasis_lambda": [], "homeostasis_baseline": [], "source": f"{path}#{digest}"}
    rest = {k: v for k, v in sim.items() if k not in OBSERVATION_KEYS and k not in fixed and v is not None}
    return SimulationParams.from_mapping({**rest, **fixed}), top


def topology(p: SimulationParams) -> Topology:
    """The topology an SBML regime's file holds (read once per process; `p.source` ends in the file's digest,
    taken when the settings were made, so the file is not hashed again)."""
    return _read_cached(p.path, p.source.rsplit("#", 1)[1], p.max_reactions)


def sbml_network(p: SimulationParams) -> Network:
    """The seeded network of an SBML regime (`network.topology_network` on the file's topology)."""
    top = topology(p)
    return topology_network(list(top.reactants), list(top.products), np.asarray(top.boundary), p,
                            top.species, top.reactions)


# ---- writing ---------------------------------------------------------------------------------------------
def _sid(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", s)
    return s if re.match(r"[A-Za-z_]", s) else f"_{s}"


def write_sbml(path: str | Path, species: list[str], reactions: list[str], substrate_edges: np.ndarray,
               signed_edges: np.ndarray, log_k: np.ndarray, log_km: np.ndarray | None, c0: np.ndarray,
               boundary: np.ndarray, drive: np.ndarray | None = None, delta_t: float = 1.0,
               name: str = "oscsim", boundary_products: np.ndarray | None = None) -> Path:
    """Write a kinetic model: v_j = Vmax_j prod (c/(Km + c))^|s| (`log_km` given) or k_j prod c^|s|, one global
    parameter per Vmax (or k) and per Km; boundary species follow `drive` ((frames, n_boundary), one value every
    `delta_t`) by an assignment rule that interpolates it linearly in time, or stay at c0 without one."""
    import libsbml

    doc = libsbml.SBMLDocument(3, 1)
    model = doc.createModel()
    model.setId(_sid(name))
    comp = model.createCompartment()
    comp.setId("cell"), comp.setSize(1.0), comp.setConstant(True), comp.setSpatialDimensions(3)
    sids = [_sid(s) for s in species]
    for i, s in enumerate(sids):
        sp = model.createSpecies()
        sp.setId(s), sp.setCompartment("cell"), sp.setInitialConcentration(float(c0[i]))
        sp.setHasOnlySubstanceUnits(False), sp.setBoundaryCondition(bool(boundary[i]))
        sp.setConstant(False)

    def parameter(pid: str, value: float) -> None:
        q = model.createParameter()
        q.setId(pid), q.setValue(float(value)), q.setConstant(True)

    rids = [_sid(r) for r in reactions]
    for j, rid in enumerate(rids):
        r = model.createReaction()
        r.setId(rid), r.setReversible(False)
        if r.getLevel() == 3 and r.getVersion() == 1:
            r.setFast(False)
        subs = substrate_edges[substrate_edges[:, 1] == j]
        net = {int(m): int(s) for m, _, s in signed_edges[signed_edges[:, 1] == j]}
        consumed = {int(m): int(s) for m, _, s in subs}
        for m, s in sorted(consumed.items()):
            ref = r.createReactant()
            ref.setSpecies(sids[m]), ref.setStoichiometry(float(s)), ref.setConstant(True)
        produced = {m: net.get(m, 0) + consumed.get(m, 0) for m in sorted(set(net) | set(consumed)) if not boundary[m]}
        if boundary_products is not None:  # a boundary species a reaction lists as product (it does not change it)
            produced.update({int(m): int(s) for m, _, s in boundary_products[boundary_products[:, 1] == j]})
        for m, s in sorted(produced.items()):
            if s > 0:
                ref = r.createProduct()
                ref.setSpecies(sids[m]), ref.setStoichiometry(float(s)), ref.setConstant(True)
        k_id = f"{'Vmax' if log_km is not None else 'k'}_{rid}"
        parameter(k_id, 10.0 ** log_k[j])
        factors = [k_id]
        for e in np.flatnonzero(substrate_edges[:, 1] == j):
            m, _, s = substrate_edges[e]
            if log_km is not None:
                km_id = f"Km_{sids[m]}_{rid}"
                parameter(km_id, 10.0 ** log_km[e])
                term = f"({sids[m]} / ({km_id} + {sids[m]}))"
            else:
                term = sids[m]
            factors.append(term if s == 1 else f"{term}^{int(s)}")
        law = r.createKineticLaw()
        law.setMath(libsbml.parseL3Formula(" * ".join(factors)))
    if drive is not None:
        for b, m in enumerate(np.flatnonzero(boundary)):
            rule = model.createAssignmentRule()
            rule.setVariable(sids[m])
            rule.setMath(libsbml.parseL3Formula(_interpolation(drive[:, b], delta_t)))
    if doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR):
        raise SBMLError(f"{path}: {doc.getError(0).getMessage().strip().splitlines()[0]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not libsbml.writeSBMLToFile(doc, str(path)):
        raise SBMLError(f"{path}: could not be written")
    return path


def export_network(path: str | Path, net: Network, trajectory: np.ndarray, delta_t: float, drive: bool = True,
                   log_k: np.ndarray | None = None, log_km: np.ndarray | None = None, name: str = "oscsim") -> Path:
    """Write `net` as SBML: its true kinetics, or the given (learned) log_k and log_km; initial concentrations
    from trajectory[0] and, with `drive`, the boundary species' course from the trajectory's boundary columns."""
    species = list(net.species) or [f"m{i}" for i in range(net.n_metabolites)]
    reactions = list(net.reactions) or [f"r{j}" for j in range(net.n_reactions)]
    boundary = net.boundary_mask
    course = np.asarray(trajectory, np.float64)[:, boundary] if drive and boundary.any() else None
    return write_sbml(path, species, reactions, net.substrate_edges, net.signed_edges,
                      net.log_k if log_k is None else log_k, net.log_km if log_km is None else log_km,
                      np.asarray(trajectory[0], np.float64), boundary, course, delta_t, name, net.boundary_products)


def _interpolation(values: np.ndarray, dt: float) -> str:
    """values[t] at time t dt, linear in between, the last value after: a balanced tree of two-way piecewise
    (a flat piecewise of n pieces takes libRoadRunner time quadratic in n to load: 25 s at 1,400 pieces)."""
    def node(lo: int, hi: int) -> str:  # the segments [lo, hi): segment t runs from t dt to (t + 1) dt
        if hi - lo == 1:
            a, b = float(values[lo]), float(values[lo + 1])
            return f"({a!r} + {(b - a) / dt!r} * (time - {lo * dt!r}))"
        mid = (lo + hi) // 2
        return f"piecewise({node(lo, mid)}, time < {mid * dt!r}, {node(mid, hi)})"

    n = len(values) - 1
    if n < 1:
        return repr(float(values[0]))
    return f"piecewise({node(0, n)}, time < {n * dt!r}, {float(values[-1])!r})"
