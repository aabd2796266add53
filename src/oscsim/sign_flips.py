"""Sign-flip moves for learned S (`S_flip_every`): a discrete step the gradient cannot take.

Negating every coefficient of a reaction keeps its exponents (|s|), its monomial and the S regularisers, and
reverses its flux. A reaction learned the wrong way round (A + B -> 2B where the data have A + B -> 2A) sits
in a local minimum: to flip by gradient steps its coefficients must pass through 0, where the exponents, the
integer penalty and the mass-conservation penalty all push back. The move is judged by the training loss
itself, on every training frame: a flip is taken only where it lowers the prediction loss, computed exactly
from the model's own rates and residuals. Nothing here reads the true network.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def flip_gains(v: torch.Tensor, err: torch.Tensor, S: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Change of the prediction loss (sum over frames of the weighted L2 norm of the dc/dt error, as
    `losses.prediction_loss`) if all coefficients of reaction j changed sign, for every j at once.

    v (T, n_rxn) the model's rates, err (T, n_met) its dc/dt error (prediction - target), S (n_met, n_rxn) the
    coefficients it uses, scale (n_met,) the per-metabolite error weights. Flipping j changes the error by
    -2 v_j S[:, j], so the squared norm of frame t becomes |e_t|^2 - 4 v_tj <e_t, S_j>_w + 4 v_tj^2 |S_j|_w^2."""
    v, err, S = v.double(), err.double(), S.double()
    w2 = torch.ones(err.shape[1], dtype=err.dtype, device=err.device) if scale is None else scale.double() ** 2
    norm2 = (err ** 2 * w2).sum(1, keepdim=True)  # (T, 1)
    cross = (err * w2) @ S  # (T, n_rxn): <e_t, S_j>_w
    own = (S ** 2 * w2[:, None]).sum(0)  # (n_rxn,): |S_j|_w^2
    after = (norm2 - 4 * v * cross + 4 * v ** 2 * own).clamp_min(0).sqrt()
    return (after - norm2.sqrt()).sum(0)


def independent_flips(gains: torch.Tensor, S: torch.Tensor, tol: float = 0.0) -> list[int]:
    """Reactions to flip: those whose flip lowers the loss, best first, none sharing a metabolite with one
    already taken (reactions on disjoint metabolites change disjoint error components, so each one's gain
    holds whatever the others do)."""
    taken: list[int] = []
    used = torch.zeros(S.shape[0], dtype=torch.bool, device=S.device)
    for j in torch.argsort(gains).tolist():
        if not gains[j] < -tol:
            break
        mets = S[:, j] != 0
        if bool((used & mets).any()) or not bool(mets.any()):
            continue
        taken.append(j)
        used |= mets
    return taken


@torch.no_grad()
def flip_signs(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, c: torch.Tensor, target: torch.Tensor,
               scale: torch.Tensor | None = None, chunk: int = 1024) -> list[int]:
    """Flip the reactions `independent_flips` picks on frames c with exact dc/dt `target`; the optimiser's
    first moment of those coefficients flips with them (the second is sign-free). Returns the reactions flipped."""
    S = model.stoichiometry()
    gains = torch.zeros(S.shape[1], dtype=torch.float64, device=S.device)
    total = 0.0  # the prediction loss on these frames
    was_training = model.training
    model.eval()
    for i in range(0, len(c), chunk):
        v, _ = model.rates(c[i:i + chunk])
        err = v @ S.T.to(v.dtype) + model.homeostasis(c[i:i + chunk]) - target[i:i + chunk]
        gains += flip_gains(v, err, S, scale)
        total += float((err if scale is None else err * scale).norm(dim=-1).sum())
    model.train(was_training)
    # a change below a millionth of the loss is within float32's resolution of the errors: not a reason to flip
    taken = independent_flips(gains, S, tol=1e-6 * total)
    if taken:
        edges = torch.isin(model.sto_rxn, torch.as_tensor(taken, device=S.device))
        model.sto[edges] *= -1
        state = optimizer.state.get(model.sto, {}) if optimizer is not None else {}
        if "exp_avg" in state:
            state["exp_avg"][edges] *= -1
    return taken
