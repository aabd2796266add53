"""Sign-flip moves for learned S (`S_flip_every`): discrete steps the gradient cannot take.

A substrate edge's exponent is |s|, so changing the sign of coefficients keeps every exponent, every monomial
and the L1 and integer penalties; it changes the fluxes' directions and the mass-conservation penalty. A
coefficient learned with the wrong sign sits in a local minimum: to change sign by gradient steps it must pass
through 0, where its exponent, the integer penalty and the mass-conservation penalty all push back. Two kinds
of move: one edge's sign, or all of a reaction's signs (the reaction run backwards: A + B -> 2B where the data
have A + B -> 2A, which keeps its mass balance). Moves are judged by the training loss itself: the prediction
loss on every training frame, computed exactly from the model's own rates and residuals, plus the
mass-conservation penalty at the weight it has over an epoch of batches. Nothing here reads the true network.
"""
from __future__ import annotations

import torch

from . import losses as L


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


def loss_change(norm2: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Change of the prediction loss (sum over frames of the weighted L2 norm of the error, as
    `losses.prediction_loss`) when each frame's squared norm `norm2` (T, 1) changes by `delta` (T, k)."""
    return ((norm2 + delta).clamp_min(0).sqrt() - norm2.sqrt()).sum(0)


def choose_moves(norm2: torch.Tensor, move_deltas: torch.Tensor, move_mets: list[set[int]], move_rxn: list[int],
                 penalty_change: torch.Tensor, tol: float = 0.0) -> list[int]:
    """Greedy, best first: take a move if it touches no metabolite and no reaction a taken move touches (its
    squared-norm changes then add to theirs exactly) and the loss of everything taken so far still falls by more
    than tol. Returns the moves taken, in order."""
    alone = loss_change(norm2, move_deltas) + penalty_change
    taken: list[int] = []
    used_mets: set[int] = set()
    used_rxn: set[int] = set()
    total = torch.zeros_like(norm2[:, 0])
    best = 0.0  # the loss change of the moves taken so far
    for i in torch.argsort(alone).tolist():
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


@torch.no_grad()
def flip_signs(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, c: torch.Tensor, target: torch.Tensor,
               scale: torch.Tensor | None = None, mass_weight: float = 0.0, chunk: int = 1024) -> list[list[int]]:
    """Take the sign-flip moves `choose_moves` picks on frames c with exact dc/dt `target`; `mass_weight` is the
    mass-conservation coefficient times the number of batches in one pass over the frames. The optimiser's first
    moment of a flipped coefficient flips with it (the second is sign-free). Returns the edges of each move."""
    sto, met, rxn = model.coefficients(), model.sto_met, model.sto_rxn
    n_rxn = model.log_k.shape[0]
    S = model.stoichiometry()
    norm2_parts, delta_parts = [], []
    was_training = model.training
    model.eval()
    for i in range(0, len(c), chunk):
        v, _ = model.rates(c[i:i + chunk])
        err = v @ S.T.to(v.dtype) + model.homeostasis(c[i:i + chunk]) - target[i:i + chunk]
        norm2_parts.append(((err if scale is None else err * scale).double() ** 2).sum(1, keepdim=True))
        delta_parts.append(edge_deltas(v, err, sto, met, rxn, scale))
    model.train(was_training)
    norm2, per_edge = torch.cat(norm2_parts), torch.cat(delta_parts)
    # the moves: every edge alone, then every reaction with more than one edge whole
    moves = [[e] for e in range(len(sto))]
    by_rxn: dict[int, list[int]] = {}
    for e, j in enumerate(rxn.tolist()):
        by_rxn.setdefault(j, []).append(e)
    moves += [edges for edges in by_rxn.values() if len(edges) > 1]
    member = torch.zeros(len(sto), len(moves), dtype=torch.float64, device=per_edge.device)
    for i, edges in enumerate(moves):
        member[edges, i] = 1.0
    move_deltas = per_edge @ member
    # the mass-conservation penalty with each move's signs flipped, against the penalty now
    mass = torch.vmap(lambda coef: L.mass_conservation_penalty(coef, rxn, n_rxn))
    penalty = mass_weight * (mass(sto.double() * (1 - 2 * member.T)) - mass(sto.double()[None])[0])
    mets, rxns = met.tolist(), rxn.tolist()
    total = float(norm2.sqrt().sum())
    # a change below a millionth of the loss is within float32's resolution of the errors: not a reason to move
    taken = choose_moves(norm2, move_deltas, [{mets[e] for e in edges} for edges in moves],
                         [rxns[edges[0]] for edges in moves], penalty.to(norm2.device), tol=1e-6 * total)
    flipped = [moves[i] for i in taken]
    if flipped:
        edges = torch.as_tensor(sorted(e for m in flipped for e in m), device=sto.device)
        model.sto[edges] *= -1  # sto and the coefficients share their sign (the gauge and `rate` scale by > 0)
        state = optimizer.state.get(model.sto, {}) if optimizer is not None else {}
        if "exp_avg" in state:
            state["exp_avg"][edges] *= -1
    return flipped
