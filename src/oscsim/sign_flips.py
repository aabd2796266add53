"""Discrete moves for learned S (`S_flip_every`): steps the gradient cannot take.

A substrate edge's exponent is |s|, so changing the sign of coefficients keeps every exponent, every monomial
and the L1 and integer penalties; it changes the fluxes' directions and the mass-conservation penalty. A
coefficient learned with the wrong sign sits in a local minimum: to change sign by gradient steps it must pass
through 0, where its exponent, the integer penalty and the mass-conservation penalty all push back. Moves:
- flip: one edge's sign, or all of a reaction's signs (the reaction run backwards: A + B -> 2B where the data
  have A + B -> 2A, which keeps its mass balance);
- reset: a reaction is given integer coefficients (each |s| rounded, at least 1) in a sign pattern, with its k
  refitted by least squares to what the other reactions leave unexplained. This reaches what a flip cannot: a
  dead reaction (coefficients near 0, or its k driven to the floor) gets no gradient at all, since its S column
  or its rate vanishes, and flipping it at k = 0 changes nothing. Needs rates that are monomials of the learned exponents
  (`ReactionModel.rates_are_monomials`).
Moves are judged by the training loss itself: the prediction loss on every training frame, computed exactly
from the model's own rates and residuals, plus the S regularisers and the k prior at the weight they have over
an epoch of batches. Nothing here reads the true network.
"""
from __future__ import annotations

import itertools

import torch

from . import losses as L

MAX_RESET_EDGES = 4  # a reaction with more S edges is not reset (2^n sign patterns)
OFF_INTEGER = 0.25  # a coefficient further than this from every integer is off the integers


@torch.no_grad()
def edge_deltas(v: torch.Tensor, err: torch.Tensor, sto: torch.Tensor, met: torch.Tensor, rxn: torch.Tensor,
                scale: torch.Tensor | None = None) -> torch.Tensor:
    """(T, n_edges): change of each frame's squared weighted dc/dt error if edge e's coefficient changed sign.

    v (T, n_rxn) the model's rates, err (T, n_met) its error (prediction - target), sto the coefficients of the
    edges (metabolite `met`, reaction `rxn`), scale (n_met,) the error weights. The flip moves metabolite m's
    prediction by -2 v_j s_e: w_m^2 ((err_m - 2 v_j s_e)^2 - err_m^2). Flips on different metabolites add."""
    w2 = 1.0 if scale is None else scale.double()[met] ** 2
    step = 2 * v.double()[:, rxn] * sto.double()
    return w2 * (step ** 2 - 2 * err.double()[:, met] * step)


@torch.no_grad()
def reset_deltas(v: torch.Tensor, err: torch.Tensor, log_m: torch.Tensor, sto: torch.Tensor, met: torch.Tensor,
                 edges: torch.Tensor, rxn: torch.Tensor, scale: torch.Tensor | None = None, mix: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reset moves of R reactions with n S edges each, every sign pattern at integer magnitudes.

    v (T, n_rxn) rates, err (T, n_met) errors, sto (E,) coefficients of the S edges (metabolite `met`);
    edges (R, n) the S edges of reactions `rxn` (R,); log_m (T, R, n + 1): per reaction, log |msg(c, 1)| of the
    substrate edge that shares each S edge's (metabolite, reaction) (0 for a pure product), then the fixed part
    of the log monomial (substrate edges with no S entry, at their given powers). A substrate edge's exponent is
    mix |s| + (1 - mix) (the exponent ramp). Returns new coefficients (R, P, n), log10 of the refitted k (R, P)
    (NaN where no positive k lowers the squared error) and each frame's change of squared error (T, R, P)."""
    n = edges.shape[1]
    coef = sto.double()[edges]  # (R, n)
    signs = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=n)), dtype=torch.float64, device=coef.device)
    new = signs[None] * coef.abs().round().clamp_min(1.0)[:, None]  # (R, P, n)
    powers = mix * new.abs() + (1.0 - mix)
    log_mono = log_m.double()[..., -1:] + torch.einsum("tri,rpi->trp", log_m.double()[..., :n], powers)
    a = new[None] * torch.exp(log_mono)[..., None]  # (T, R, P, n): change of dc/dt per unit k
    w2 = (torch.ones_like(coef) if scale is None else scale.double()[met[edges]] ** 2)[:, None]  # (R, 1, n)
    now = err.double()[:, met[edges]]  # (T, R, n)
    rest = now - v.double()[:, rxn, None] * coef[None]  # the error with the reaction taken out
    k = -(w2 * rest[:, :, None] * a).sum((0, 3)) / (w2 * a * a).sum((0, 3)).clamp_min(1e-300)
    ok = torch.isfinite(k) & (k > 0)
    k = torch.where(ok, k, torch.ones_like(k))
    delta = (w2 * ((rest[:, :, None] + k[None, ..., None] * a) ** 2 - now[:, :, None] ** 2)).sum(-1)
    return new, torch.where(ok, torch.log10(k), torch.full_like(k, float("nan"))), delta


def loss_change(norm2: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Change of the prediction loss (sum over frames of the weighted L2 norm of the error, as
    `losses.prediction_loss`) when each frame's squared norm `norm2` (T, 1) changes by `delta` (T, k)."""
    return ((norm2 + delta).clamp_min(0).sqrt() - norm2.sqrt()).sum(0)


def choose_moves(norm2: torch.Tensor, move_deltas: torch.Tensor, move_mets: list[set[int]], move_rxn: list[int],
                 penalty_change: torch.Tensor, tol: float = 0.0) -> list[int]:
    """Greedy, best first (ties: the earlier move): take a move if it touches no metabolite and no reaction a
    taken move touches (its squared-norm changes then add to theirs exactly) and the loss of everything taken so
    far still falls by more than tol. Returns the moves taken, in order."""
    alone = loss_change(norm2, move_deltas) + penalty_change
    taken: list[int] = []
    used_mets: set[int] = set()
    used_rxn: set[int] = set()
    total = torch.zeros_like(norm2[:, 0])
    best = 0.0  # the loss change of the moves taken so far
    for i in torch.argsort(alone, stable=True).tolist():
        if not alone[i] < -tol:
            break
        if move_rxn[i] in used_rxn or move_mets[i] & used_mets:
            continue
        trial = total + move_deltas[:, i]
        change = float(loss_change(norm2, trial[:, None])[0]) + float(penalty_change[taken + [i]].sum())
        if change < best - tol:
            taken.append(i)
            total, best = trial, change
            used_mets |= move_mets[i]
            used_rxn.add(move_rxn[i])
    return taken


def _errors(model: torch.nn.Module, c: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | None,
            chunk: int, log_messages: bool) -> tuple[torch.Tensor, ...]:
    """Rates, errors, squared weighted error norms (and log unit messages) on all frames, in chunks."""
    S = model.stoichiometry()
    parts: list[list[torch.Tensor]] = [[], [], []]
    was_training = model.training
    model.eval()
    for i in range(0, len(c), chunk):
        ci = c[i:i + chunk]
        v, _ = model.rates(ci)
        parts[0].append(v)
        parts[1].append(v @ S.T.to(v.dtype) + model.homeostasis(ci) - target[i:i + chunk])
        if log_messages:
            parts[2].append(model.log_unit_messages(ci))
    model.train(was_training)
    v, err = torch.cat(parts[0]), torch.cat(parts[1])
    norm2 = ((err if scale is None else err * scale).double() ** 2).sum(1, keepdim=True)
    return v, err, norm2, (torch.cat(parts[2]) if log_messages else None)


def _penalty(coef: torch.Tensor, rxn: torch.Tensor, n_rxn: int, coeffs: dict[str, float]) -> torch.Tensor:
    return sum((w * L.S_PENALTIES[name](coef, rxn, n_rxn) for name, w in coeffs.items() if w), coef.new_zeros(()))


@torch.no_grad()
def flip_signs(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, c: torch.Tensor, target: torch.Tensor,
               scale: torch.Tensor | None = None, coeffs: dict[str, float] | None = None, per_epoch: float = 1.0,
               resets: bool = True, chunk: int = 1024) -> tuple[list[list[int]], list[list[int]]]:
    """Take the moves `choose_moves` picks on frames c with exact dc/dt `target`. `coeffs`: the S regularisers'
    coefficients (names of `losses.S_PENALTIES`); they and the k prior count `per_epoch` times (the number of batches
    in one pass over the frames). A flipped coefficient's first Adam moment flips with it; a reset zeroes the
    first moments of what it sets. Resets are taken only if the loss recomputed afterwards is lower (the
    median gauge can move); otherwise every move is undone. Returns the edges of each flip and of each reset."""
    coeffs = dict(coeffs or {})
    sto, met, rxn = model.coefficients(), model.sto_met, model.sto_rxn
    n_rxn = model.log_k.shape[0]
    resets = resets and getattr(model, "rates_are_monomials", False) and model.sto_param == "coefficient"
    v, err, norm2, log_msg = _errors(model, c, target, scale, chunk, resets)
    by_rxn: dict[int, list[int]] = {}
    for e, j in enumerate(rxn.tolist()):
        by_rxn.setdefault(j, []).append(e)
    # flips: every edge alone, then every reaction with more than one edge whole
    moves = [[e] for e in range(len(sto))] + [edges for edges in by_rxn.values() if len(edges) > 1]
    member = torch.zeros(len(sto), len(moves), dtype=torch.float64, device=sto.device)
    for i, edges in enumerate(moves):
        member[edges, i] = 1.0
    move_deltas = [edge_deltas(v, err, sto, met, rxn, scale) @ member]
    new_coef = [sto.double()[None] * (1 - 2 * member.T)]  # every move's coefficients
    new_logk: list[float] = [float("nan")] * len(moves)
    n_flips = len(moves)
    if resets:
        r_moves, r_deltas, r_coef, r_logk = _reset_moves(model, sto.double(), v, err, log_msg, scale, by_rxn)
        moves += r_moves
        move_deltas += r_deltas
        new_coef += r_coef
        new_logk += r_logk
    move_deltas, new_coef = torch.cat(move_deltas, 1), torch.cat(new_coef)
    logk_now = model.log_k.double()
    move_rxn = [int(rxn[edges[0]]) for edges in moves]
    dk = torch.nan_to_num(torch.tensor(new_logk, dtype=torch.float64, device=sto.device) - logk_now[move_rxn])
    # what each move does to the penalties: the S regularisers on its coefficients, the prior on its k
    penalty = per_epoch * (torch.vmap(lambda cf: _penalty(cf, rxn, n_rxn, coeffs))(new_coef)
                           - _penalty(sto.double(), rxn, n_rxn, coeffs))
    if getattr(model, "k_prior", 0):
        res = model.prior_residuals().double()[model.k_index][move_rxn]
        acts = model.k_prior_mask[model.k_index][move_rxn]
        penalty = penalty + per_epoch * model.k_prior * torch.where(acts, (res + dk) ** 2 - res ** 2, 0.0)
    mets = met.tolist()
    before = _total(model, c, target, scale, chunk, coeffs, per_epoch, rxn, n_rxn, norm2)
    # a change below a millionth of the loss is within float32's resolution of the errors: not a reason to move;
    # a reset must beat a flip to the same signs by that much too (it also discards the moments and k)
    tol = 1e-6 * before
    penalty[n_flips:] += tol
    taken = choose_moves(norm2, move_deltas, [{mets[e] for e in edges} for edges in moves],
                         move_rxn, penalty.to(norm2.device), tol=tol)
    flips = [moves[i] for i in taken if i < n_flips]
    reset = [i for i in taken if i >= n_flips]
    if not taken:
        return [], []
    state = optimizer.state.get(model.sto, {}) if optimizer is not None else {}
    k_state = optimizer.state.get(model.log_k_param, {}) if optimizer is not None else {}
    if reset:  # what to restore, flips included, if the recomputed loss does not fall
        saved = (model.sto.clone(), model.log_k_param.clone(), {k: v.clone() for k, v in state.items()},
                 {k: v.clone() for k, v in k_state.items()}, model.sto_fixed_value.clone())
    if flips:
        edges = torch.as_tensor(sorted(e for m in flips for e in m), device=sto.device)
        model.flip_coefficients(edges)
        if "exp_avg" in state:
            state["exp_avg"][edges] *= -1
    if reset:
        for i in reset:
            edges = torch.as_tensor(moves[i], device=sto.device)
            model.set_coefficients(edges, new_coef[i, edges])
            p = model.k_index[move_rxn[i]]
            model.log_k_param[p] = new_logk[i]
            if "exp_avg" in state:
                state["exp_avg"][edges] = 0.0
            if "exp_avg" in k_state:
                k_state["exp_avg"][p] = 0.0
        if not _total(model, c, target, scale, chunk, coeffs, per_epoch, rxn, n_rxn) < before:
            model.sto.copy_(saved[0])
            model.log_k_param.copy_(saved[1])
            model.sto_fixed_value.copy_(saved[4])
            for live, old in ((state, saved[2]), (k_state, saved[3])):
                for k, v in old.items():
                    live[k].copy_(v)
            return [], []
    return flips, [moves[i] for i in reset]


@torch.no_grad()
def round_coefficients(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> list[int]:
    """Hold at their integers the reactions whose coefficients all lie within OFF_INTEGER of one (`S_round_at`).

    S is integer (SPEC §8); a coefficient near 1 but not at it makes its substrate's exponent near 1, and on a
    metabolite whose concentration varies little that trades against k (c^(1 + e) ~ c_mean^e c), so k ends off
    by what e is worth. Rounding puts the integer structure into the model; training goes on with those edges
    held (`ReactionModel.sto_fixed`: no gradient, their Adam moments zeroed) and everything else adapting. A
    reaction with any coefficient off the integers is left to the gradient, as is one that would round to all
    zeros (the data do not fix it; held at 0 it could never come back). Returns the reactions rounded."""
    coef = model.coefficients()
    target = coef.round()
    near = (coef - target).abs() <= OFF_INTEGER
    rxn = model.sto_rxn
    n_rxn = model.log_k.shape[0]
    off = torch.zeros(n_rxn, dtype=torch.long, device=coef.device).index_add_(0, rxn, (~near).long())
    nonzero = torch.zeros(n_rxn, dtype=torch.long, device=coef.device).index_add_(0, rxn, (target != 0).long())
    take = ((off == 0) & (nonzero > 0))[rxn] & ~model.sto_fixed
    if not take.any():
        return []
    model.set_coefficients(take, target[take], hold=True)
    state = optimizer.state.get(model.sto, {}) if optimizer is not None else {}
    for name in ("exp_avg", "exp_avg_sq"):
        if name in state:
            state[name][take] = 0.0
    return sorted(set(rxn[take].tolist()))


def _total(model, c, target, scale, chunk, coeffs, per_epoch, rxn, n_rxn, norm2=None) -> float:
    """The loss the moves are judged by: prediction on every frame plus the S penalties and the k prior per epoch."""
    if norm2 is None:
        norm2 = _errors(model, c, target, scale, chunk, False)[2]
    prior = model.prior_penalty() if hasattr(model, "prior_penalty") else None
    return (float(norm2.sqrt().sum()) + per_epoch * float(_penalty(model.coefficients().double(), rxn, n_rxn, coeffs))
            + per_epoch * (float(prior) if prior is not None else 0.0))


def _reset_moves(model, sto, v, err, log_msg, scale, by_rxn):
    """Every reset move (reactions with 1..MAX_RESET_EDGES S edges, every sign pattern that is not where the
    reaction already is: an edge off an integer by more than 0.25 or of the other sign) at coefficients sto:
    their edges, per-frame squared-error changes (T, 1), coefficient vectors (1, E) and log10 k."""
    moves, move_deltas, new_coef, new_logk = [], [], [], []
    sub_to_sto = model.sub_to_sto
    fixed_pow = torch.where(sub_to_sto < 0, model.sub_pow.double(), torch.zeros_like(model.sub_pow.double()))
    fixed = (log_msg.double() * fixed_pow) @ model.incidence.double()  # (T, n_rxn)
    # log |msg| of the substrate edge paired with each S edge (0 for an S edge that is no substrate)
    paired = torch.zeros(log_msg.shape[0], len(sto), dtype=torch.float64, device=sto.device)
    has = sub_to_sto >= 0
    paired[:, sub_to_sto[has]] = log_msg.double()[:, has]
    mix = float(model.exponent_mix)
    for n in range(1, MAX_RESET_EDGES + 1):
        group = [(j, e) for j, e in by_rxn.items() if len(e) == n]
        if not group:
            continue
        rxn = torch.as_tensor([j for j, _ in group], device=sto.device)
        edges = torch.as_tensor([e for _, e in group], device=sto.device)
        log_m = torch.cat([paired[:, edges], fixed[:, rxn, None]], -1)
        new, logk, delta = reset_deltas(v, err, log_m, sto, model.sto_met, edges, rxn, scale, mix)
        for r, (j, e) in enumerate(group):
            for q in range(new.shape[1]):
                if torch.isnan(logk[r, q]) or float((new[r, q] - sto[e]).abs().max()) <= OFF_INTEGER:
                    continue  # no positive k helps, or nothing to reset
                moves.append(list(e))
                coef = sto.clone()
                coef[e] = new[r, q]
                new_coef.append(coef[None])
                new_logk.append(float(logk[r, q]))
                move_deltas.append(delta[:, r, q, None])
    return moves, move_deltas, new_coef, new_logk
