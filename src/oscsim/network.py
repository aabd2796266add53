"""Seeded construction of a reaction network: the lab's oscillatory generator (SPEC §1) and kinetics on a given
topology such as an SBML file's (SPEC §11). Pure NumPy, no I/O."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .params import SimulationParams


@dataclass(frozen=True)
class Network:
    """A reaction network: who is a substrate of what, and the stoichiometric matrix S."""

    n_metabolites: int
    n_reactions: int
    substrate_edges: np.ndarray  # (E_sub, 3) int64: metabolite, reaction, |s|
    signed_edges: np.ndarray  # (E, 3) int64: metabolite, reaction, signed s
    metabolite_type: np.ndarray  # (n_metabolites,) int64
    log_k: np.ndarray  # (n_reactions,) float64, true log10 rate constants
    homeostasis_lambda: np.ndarray  # (n_types,) float64
    homeostasis_baseline: np.ndarray  # (n_types,) float64
    # Michaelis-Menten kinetics (SPEC §11): log10 Km per substrate edge (None: mass action, log_k is then k;
    # with Km, log_k is log10 Vmax).
    log_km: np.ndarray | None = None
    # External sources (SPEC §11): reactions read them, none changes them (no S entries); they follow a drive.
    boundary: np.ndarray | None = None  # (n_metabolites,) bool; None: none
    boundary_products: np.ndarray | None = None  # (E_b, 3) metabolite, reaction, coefficient: boundary species a
    # reaction lists as products (no effect on the dynamics; kept so an SBML export writes the reaction as read)
    species: tuple[str, ...] = ()  # names (an SBML file's ids), for export and figures
    reactions: tuple[str, ...] = ()

    @property
    def kinetics(self) -> str:
        return "mass_action" if self.log_km is None else "michaelis_menten"

    @property
    def boundary_mask(self) -> np.ndarray:
        return np.zeros(self.n_metabolites, bool) if self.boundary is None else np.asarray(self.boundary, bool)

    @property
    def S(self) -> np.ndarray:
        return stoichiometric_matrix(self.signed_edges, self.n_metabolites, self.n_reactions)

    @property
    def n_substrates(self) -> np.ndarray:
        """Number of substrate edges of each reaction (the alpha correction's exponent)."""
        return np.bincount(self.substrate_edges[:, 1], minlength=self.n_reactions)


def stoichiometric_matrix(signed_edges: np.ndarray, n_metabolites: int, n_reactions: int) -> np.ndarray:
    S = np.zeros((n_metabolites, n_reactions), dtype=np.float64)
    np.add.at(S, (signed_edges[:, 0], signed_edges[:, 1]), signed_edges[:, 2])
    return S


def _cycle_reactions(rng: np.random.RandomState, n_metabolites: int, n_cycle: int, cycle_length: int):
    """Autocatalytic cycles m_i + m_{i+1} -> 2 m_{i+1}, drawn as the lab draws them."""
    used: set[int] = set()
    reactions = []
    for _ in range(n_cycle // cycle_length):
        available = [m for m in range(n_metabolites) if m not in used]
        if len(available) < cycle_length:
            available = list(range(n_metabolites))
        members = rng.choice(available, size=cycle_length, replace=False)
        used.update(int(m) for m in members)
        for i in range(cycle_length):
            food, cat = int(members[i]), int(members[(i + 1) % cycle_length])
            reactions.append(({food: 1, cat: 1}, {food: -1, cat: +1}))
    return reactions


def _random_reaction(rng: np.random.RandomState, n_metabolites: int, max_per_reaction: int):
    """Disjoint substrates and products, substrate powers 1 or 2, mass conserved."""
    n_sub = rng.randint(1, max_per_reaction)
    n_prod = rng.randint(1, max_per_reaction)
    mets = rng.choice(n_metabolites, size=min(n_sub + n_prod, n_metabolites), replace=False)
    subs, prods = mets[:n_sub], mets[n_sub:]
    if len(prods) == 0:  # tiny networks: keep at least one product
        subs, prods = mets[:-1], mets[-1:]
    powers = rng.randint(1, 3, size=len(subs))
    total = int(powers.sum())
    share = np.full(len(prods), total // len(prods))
    share[: total % len(prods)] += 1
    substrates = {int(m): int(p) for m, p in zip(subs, powers)}
    net = {int(m): -int(p) for m, p in zip(subs, powers)}
    net.update({int(m): int(q) for m, q in zip(prods, share) if q > 0})
    return substrates, net


# The lab draws the true log10 k inside its generator model, from torch's global RNG seeded with the
# simulation seed, right after building two MLPs (2-64-64-1 and 1-64-64-1) whose initialisation consumes
# uniform draws. Replaying those draws on a private generator gives the lab's exact k (SPEC §6's ceiling
# of 0.946 with 7 outliers is reproduced only this way).
_LAB_GENERATOR_MLPS = ((2, 64, 64, 1), (1, 64, 64, 1))


def lab_log_k(seed: int, n_reactions: int, low: float, high: float) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    for sizes in _LAB_GENERATOR_MLPS:
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            torch.empty(fan_out, fan_in).uniform_(generator=g)  # weight (kaiming_uniform_)
            torch.empty(fan_out).uniform_(generator=g)  # bias
    return torch.empty(n_reactions).uniform_(low, high, generator=g).double().numpy()


# Km are drawn after everything else, from a stream of their own, so a regime's k and topology do not depend on
# the kinetics chosen.
KM_SEED_OFFSET = 7919


def draw_log_km(p: SimulationParams, n_edges: int) -> np.ndarray | None:
    """log10 Km per substrate edge, uniform in [log_km_min, log_km_max] (None for mass action)."""
    if p.kinetics != "michaelis_menten":
        return None
    return np.random.RandomState(p.seed + KM_SEED_OFFSET).uniform(p.log_km_min, p.log_km_max, n_edges)


def topology_network(reactants: list[dict[int, int]], products: list[dict[int, int]], boundary: np.ndarray,
                     p: SimulationParams, species: tuple[str, ...] = (), reactions: tuple[str, ...] = ()) -> Network:
    """Seeded kinetics on a given topology (an SBML file's): log10 k (Vmax) uniform in [log_k_min, log_k_max]
    per reaction from RandomState(seed), Km as `draw_log_km`. Substrate edges are the reactants with their
    coefficients (boundary species included: they drive rates); S holds the net change of every species that
    is not a boundary species. One metabolite type, no homeostasis (a real network has none of the lab's)."""
    boundary = np.asarray(boundary, bool)
    sub = [(m, j, s) for j, subs in enumerate(reactants) for m, s in sorted(subs.items())]
    signed, b_prods = [], []
    for j, (subs, prods) in enumerate(zip(reactants, products)):
        net = {m: prods.get(m, 0) - subs.get(m, 0) for m in sorted(set(subs) | set(prods))}
        signed += [(m, j, s) for m, s in net.items() if s != 0 and not boundary[m]]
        b_prods += [(m, j, s) for m, s in sorted(prods.items()) if boundary[m]]
    log_k = np.random.RandomState(p.seed).uniform(p.log_k_min, p.log_k_max, len(reactants))
    sub_edges = np.asarray(sub, dtype=np.int64).reshape(-1, 3)
    return Network(
        n_metabolites=len(boundary), n_reactions=len(reactants), substrate_edges=sub_edges,
        signed_edges=np.asarray(signed, dtype=np.int64).reshape(-1, 3),
        metabolite_type=np.zeros(len(boundary), np.int64), log_k=log_k,
        homeostasis_lambda=np.zeros(1), homeostasis_baseline=np.zeros(1),
        log_km=draw_log_km(p, len(sub_edges)), boundary=boundary if boundary.any() else None,
        boundary_products=np.asarray(b_prods, dtype=np.int64).reshape(-1, 3) if b_prods else None,
        species=tuple(species), reactions=tuple(reactions))


def build_network(p: SimulationParams) -> Network:
    """Build the network for `p`; the same seed gives the same network as the lab's code."""
    rng = np.random.RandomState(p.seed)
    n_cycle = int(p.n_reactions * p.cycle_fraction)
    reactions = _cycle_reactions(rng, p.n_metabolites, n_cycle, p.cycle_length)
    # Reactions n_cycle_covered..n_cycle-1 (e.g. 255 of 256) get no edges: kept, as in the lab.
    reactions += [({}, {})] * (n_cycle - len(reactions))
    for _ in range(p.n_reactions - n_cycle):
        reactions.append(_random_reaction(rng, p.n_metabolites, p.max_metabolites_per_reaction))
    log_k = lab_log_k(p.seed, p.n_reactions, p.log_k_min, p.log_k_max)

    sub_edges = [(m, j, s) for j, (subs, _) in enumerate(reactions) for m, s in sorted(subs.items())]
    signed = [(m, j, s) for j, (_, net) in enumerate(reactions) for m, s in sorted(net.items())]
    n_types = p.n_metabolite_types
    types = (np.arange(p.n_metabolites) * n_types) // p.n_metabolites
    lam = np.asarray(p.homeostasis_lambda or [0.0] * n_types, dtype=np.float64)
    if p.homeostatic_strength > 0 and not p.homeostasis_lambda:
        lam = np.full(n_types, p.homeostatic_strength)
    base = np.asarray(p.homeostasis_baseline or [0.0] * n_types, dtype=np.float64)
    sub_edges = np.asarray(sub_edges, dtype=np.int64).reshape(-1, 3)
    return Network(
        n_metabolites=p.n_metabolites,
        n_reactions=p.n_reactions,
        substrate_edges=sub_edges,
        signed_edges=np.asarray(signed, dtype=np.int64).reshape(-1, 3),
        metabolite_type=types.astype(np.int64),
        log_k=log_k,
        homeostasis_lambda=lam,
        homeostasis_baseline=base,
        log_km=draw_log_km(p, len(sub_edges)),
    )


def monomial_groups(substrate_edges: np.ndarray, n_reactions: int) -> dict[tuple, list[int]]:
    """Reactions grouped by their substrate monomial (same substrates with the same powers)."""
    keys: dict[int, list[tuple[int, int]]] = {j: [] for j in range(n_reactions)}
    for m, j, s in substrate_edges:
        keys[int(j)].append((int(m), int(s)))
    groups: dict[tuple, list[int]] = {}
    for j in range(n_reactions):
        groups.setdefault(tuple(sorted(keys[j])), []).append(j)
    return groups


def swap_pairs(net: Network) -> list[tuple[int, int]]:
    """Pairs of reactions with the same substrate monomial and opposite S columns (A + B -> 2A beside
    A + B -> 2B). Their joint effect is (k_a - k_b) m(c) S_a: exchanging the two reactions' k and coefficients
    changes no dc/dt, no exponent and no prior that treats reactions alike, so when S is learned the data cannot
    tell which of the two has which sign."""
    S = net.S
    pairs = []
    for key, members in monomial_groups(net.substrate_edges, net.n_reactions).items():
        for i, a in enumerate(members):
            pairs += [(a, b) for b in members[i + 1:] if key and S[:, a].any() and np.array_equal(S[:, a], -S[:, b])]
    return pairs


def unidentifiable_reactions(substrate_edges: np.ndarray, n_reactions: int) -> list[int]:
    """Reactions whose k cannot be recovered on its own: no substrate edge, or a shared monomial."""
    out = []
    for key, members in monomial_groups(substrate_edges, n_reactions).items():
        if key == () or len(members) > 1:
            out.extend(members)
    return sorted(out)


@dataclass(frozen=True)
class KStructure:
    """What S and the substrate edges say about the rate constants before any data is seen.

    Reactions with the same substrate monomial and the same S column act on the data only through the sum of
    their k: they share one parameter (so each holds half the identified sum). A parameter the data leave free
    along some direction (no substrate, a zero S column, or a monomial shared with a different column, where only
    a signed combination is fixed) is marked `prior`: an estimator holds it near the regime's known range.
    """

    index: np.ndarray  # (n_reactions,) int64: the parameter each reaction's k is
    prior: np.ndarray  # (n_params,) bool
    unidentifiable: list[int]  # reactions whose k the data cannot fix on its own (SPEC §4)

    @property
    def n_params(self) -> int:
        return len(self.prior)


def k_structure(net: Network, tie: bool = True) -> KStructure:
    """The parameterisation of k that S implies (`tie=False`: one parameter per reaction, the lab's)."""
    S = net.S
    index = np.full(net.n_reactions, -1, dtype=np.int64)
    prior: list[bool] = []
    for key, members in monomial_groups(net.substrate_edges, net.n_reactions).items():
        start = len(prior)
        if tie and key:
            columns: list[tuple] = []
            for j in members:
                col = tuple(S[:, j])
                if col not in columns:
                    columns.append(col)
                index[j] = start + columns.index(col)
            n = len(columns)
        else:
            index[members] = start + np.arange(len(members))
            n = len(members)
        prior.extend([key == () or n > 1] * n)
    for j in np.flatnonzero(~S.any(axis=0)):  # a reaction that changes nothing is fixed by nothing
        prior[index[j]] = True
    return KStructure(index, np.asarray(prior, bool), unidentifiable_reactions(net.substrate_edges, net.n_reactions))
