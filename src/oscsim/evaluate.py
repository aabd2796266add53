"""Score a trained model with every metric of the lab's log, and what the lab could not measure."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import metrics as M
from .dataset import Dataset
from .dynamics import euler_step
from .models import RateModel
from .network import unidentifiable_reactions

NODE_SWEEP = np.linspace(0.0, 40.0, 50)  # the lab's MLP_node concentration sweep
DBSCAN_EPS, DBSCAN_MIN = 0.1, 5  # the lab's embedding clustering


@dataclass
class Evaluation:
    metrics: dict
    corrected_log_k: np.ndarray
    outliers: np.ndarray
    rollout_true: np.ndarray
    rollout_pred: np.ndarray
    curves: dict = field(default_factory=dict)


@torch.no_grad()
def alpha_of(model: RateModel, power: int = 1) -> float:
    """|msg(c = 1, |s| = power)|: the scale MLP_sub took at c = 1 (the lab's alpha at power 1); 1 for a model whose
    substrate term has a fixed form (no MLP_sub, no scale to undo)."""
    if model.sub is None:
        return 1.0
    p = next(model.parameters())
    return float(model.substrate(torch.ones(1, dtype=p.dtype, device=p.device), float(power)).abs())


@torch.no_grad()
def rate_constant_scores(model: RateModel, ds: Dataset) -> tuple[dict, np.ndarray]:
    """The lab's rate-constant metrics on the model's own log_k (alpha-corrected as the lab does), plus the R^2
    over identifiable reactions. Nothing is substituted: what S implies is in the model's parameterisation."""
    edges = ds.network.substrate_edges
    alphas = {s: alpha_of(model, s) for s in {1, *(int(p) for p in edges[:, 2])}}
    alpha = alphas[1]
    if getattr(model, "learned_S", False):  # the scale each edge's message has at the exponent the model learned
        edge_log_alpha = torch.log10(model.edge_alphas().clamp_min(1e-30)).cpu().numpy()
        corrected = M.corrected_by_edge(model.log_k.detach().cpu().numpy(), edges[:, 1], edge_log_alpha,
                                        np.log10(max(alphas[1], 1e-30)))
    else:
        corrected = M.alpha_corrected_log_k(model.log_k.detach().cpu().numpy(), edges, alphas)
    unident = unidentifiable_reactions(ds.network.substrate_edges, ds.network.n_reactions)
    ident = np.ones(ds.network.n_reactions, bool)
    ident[unident] = False
    m = M.rate_constant_metrics(corrected, ds.network.log_k, ident)
    m["alpha"] = alpha
    if len(alphas) > 1:
        m.update({f"alpha_{s}": a for s, a in alphas.items() if s != 1})
    m["unidentifiable"] = unident
    if isinstance(getattr(model, "sto", None), torch.nn.Parameter):  # learned stoichiometry
        edges = ds.network.signed_edges
        m.update(M.stoichiometry_metrics(model.coefficients().detach().cpu().numpy(), edges[:, 2], ident[edges[:, 1]]))
    if ds.network.log_km is not None and ds.has_truth:  # Michaelis-Menten data: Vmax with Km, and Km itself
        vmax_ok, km_ok = ds.michaelis_menten_identifiable()
        m["n_Vmax_identifiable_with_Km"], m["n_Km_identifiable"] = int(vmax_ok.sum()), int(km_ok.sum())
        m["Vmax_R2_identifiable_with_Km"] = M.linear_fit_r2(ds.network.log_k[vmax_ok], corrected[vmax_ok])[0]
        log_km = getattr(model, "log_km", None)
        if log_km is not None:
            m["Km_R2_identifiable"] = M.linear_fit_r2(ds.network.log_km[km_ok], log_km.detach().cpu().numpy()[km_ok])[0]
    return m, corrected


def _roll(step, c: torch.Tensor, n_steps: int, dt: float, clamp: bool, substeps: int,
          forced: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """States (n_steps + 1, *c.shape) of the Euler rollout of `step` (c -> dc/dt) from c (leading axis: the
    members rolled together); stops early once every member has a non-finite value (the rest stays NaN)."""
    out = torch.full((n_steps + 1, *c.shape), float("nan"), dtype=c.dtype, device=c.device)
    out[0] = c
    for t in range(n_steps):
        for s in range(substeps):
            c = euler_step(c, step(c), dt / substeps, clamp)
            if forced is not None:
                w = (s + 1) / substeps
                c[..., forced[0]] = (1 - w) * forced[1][t] + w * forced[1][t + 1]
        out[t + 1] = c
        if t % 100 == 0 and not torch.isfinite(c).reshape(c.shape[0], -1).all(dim=1).any():
            break
    return out


@torch.no_grad()
def rollout(model: RateModel, c0: torch.Tensor, n_steps: int, dt: float, clamp: bool, substeps: int = 1,
            forced: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """Roll the learned dynamics forward with the simulator's Euler step (`substeps` steps of dt / substeps per
    frame); stops early once non-finite. `forced` = (index, values (n_steps + 1, n_b)): driven boundary species
    follow their observed course (linear between frames), as in the simulator."""
    return _roll(lambda c: model(c).dcdt, c0.unsqueeze(0), n_steps, dt, clamp, substeps, forced)[:, 0].cpu().numpy()


class _Derivative(torch.nn.Module):
    """model(c).dcdt as a module (vmap returns tensors, not the model's Output)."""

    def __init__(self, model: RateModel):
        super().__init__()
        self.model = model

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.model(c).dcdt


def _rollout_inputs(ds: Dataset, rollout_frames: int, dtype: torch.dtype, device: torch.device):
    """(name, trajectory, c0, forced) of the test rollouts: from frame 0 of the training trajectory (the lab's
    test_R2) and of the held-out one; and the number of steps."""
    n_steps = min(rollout_frames, ds.params.n_frames - 2)
    idx = np.flatnonzero(ds.network.boundary_mask)
    out = []
    for name, traj in (("", ds.concentrations), ("heldout_", ds.heldout)):
        if traj is None:
            continue
        forced = (torch.as_tensor(idx, device=device),
                  torch.as_tensor(traj[: n_steps + 1][:, idx], dtype=dtype, device=device)) if len(idx) else None
        out.append((name, traj, torch.as_tensor(traj[0], dtype=dtype, device=device), forced))
    return out, n_steps


@torch.no_grad()
def rollouts(models: list[RateModel], ds: Dataset, rollout_frames: int = 2000, clamp: bool = True,
             dtype: torch.dtype = torch.float64) -> list[dict[str, np.ndarray]]:
    """The test rollouts of many models of one structure at once, one vmapped step for all (what `evaluate`
    computes one model at a time; on a GPU, hundreds of models' rollouts cost about what one does). Each
    model's rollout is its own (the models are independent), equal to `rollout`'s up to rounding."""
    from .models.stacked import Stacked

    device = next(models[0].parameters()).device
    for m in models:
        m.eval().to(dtype)
    stacked = Stacked([_Derivative(m) for m in models])
    inputs, n_steps = _rollout_inputs(ds, rollout_frames, dtype, device)
    sub = ds.observation.frame_substeps if ds.observation is not None else 1
    preds: list[dict[str, np.ndarray]] = [{} for _ in models]
    for name, _, c0, forced in inputs:
        c = c0.expand(len(models), 1, -1).clone()  # (M, 1, n): each model its own batch of one state
        out = _roll(stacked, c, n_steps, ds.params.delta_t, clamp, sub, forced).cpu().numpy()
        for i in range(len(models)):
            preds[i][name] = out[:, i, 0]
    for m in models:
        m.to(torch.float32)
    return preds


@torch.no_grad()
def evaluate(model: RateModel, ds: Dataset, rollout_frames: int = 2000, clamp: bool = True,
             dtype: torch.dtype = torch.float64, preds: dict[str, np.ndarray] | None = None) -> Evaluation:
    """Every metric of `model`; `preds`: its test rollouts when already computed (`rollouts`, many models at once)."""
    model = model.eval()
    device = next(model.parameters()).device
    m, corrected = rate_constant_scores(model, ds)
    outliers = np.abs(corrected - ds.network.log_k) > M.OUTLIER_THRESHOLD

    # Rollouts from frame 0 of the training trajectory (the lab's test_R2) and of the held-out one.
    inputs, n_steps = _rollout_inputs(ds, rollout_frames, dtype, device)
    sub = ds.observation.frame_substeps if ds.observation is not None else 1
    preds = dict(preds) if preds is not None else {}
    r_model = model.to(dtype)
    for name, traj, c0, forced in inputs:
        if name not in preds:
            preds[name] = rollout(r_model, c0, n_steps, ds.params.delta_t, clamp, sub, forced)
        m.update({name + k: v for k, v in M.rollout_metrics(traj[: n_steps + 1], preds[name]).items()})
    model.to(torch.float32)
    true, pred = ds.concentrations[: n_steps + 1], preds[""]
    curves = {}
    if getattr(model, "log_km", None) is not None:
        curves["log_km"] = model.log_km.detach().cpu().numpy()
        if getattr(model, "km_learned", False):
            curves["km_learned"] = True
    if isinstance(getattr(model, "sto", None), torch.nn.Parameter):
        curves["sto"], curves["S_learned"] = model.coefficients().detach().cpu().numpy(), model.stoichiometry().detach().cpu().numpy()
    if "heldout_" in preds:
        curves["heldout_true"], curves["heldout_pred"] = ds.heldout[: n_steps + 1], preds["heldout_"]

    # MLP_sub against the true power law c^|s|, over the concentrations its edges visit (all data for a power
    # the network lacks).
    edges = ds.network.substrate_edges
    powers = sorted({int(s) for s in edges[:, 2]})
    r2s = []
    for s in (1, 2) if model.sub is not None else ():
        mets = np.unique(edges[edges[:, 2] == s, 0])
        lo, hi = np.percentile(ds.concentrations[:, mets] if len(mets) else ds.concentrations, [1, 99])
        c_grid = np.linspace(max(lo, 0.05), hi, 200)
        y = model.substrate(torch.as_tensor(c_grid, dtype=torch.float32, device=device), float(s)).cpu().numpy()
        curves[f"c_{s}"], curves[f"sub_{s}"] = c_grid, y
        m[f"MLP_sub_exponent_{s}"] = M.fitted_exponent(c_grid, y)
        if s in powers:
            ref = abs(float(model.substrate(torch.ones(1, device=device), float(s))))
            r2s.append(float(M.r2_per_series(c_grid[:, None] ** s, (np.abs(y) / max(ref, 1e-12))[:, None])[0]))
    m["MLP_sub_R2"] = float(np.mean(r2s)) if r2s else float("nan")
    m["MLP_sub_powers_in_data"] = powers

    # MLP_node: fitted slope over the lab's sweep, per metabolite, averaged per type, against -lambda.
    sweep = torch.as_tensor(NODE_SWEEP, dtype=torch.float32, device=device)
    node = model.homeostasis(sweep[:, None].expand(-1, ds.network.n_metabolites)).cpu().numpy()  # (50, n_met)
    slopes = np.polyfit(NODE_SWEEP, node, 1)[0]
    curves["node_c"], curves["node"] = NODE_SWEEP, node
    types = ds.network.metabolite_type
    for t in range(len(ds.network.homeostasis_lambda)):
        m[f"MLP_node_slope_{t}"] = float(slopes[types == t].mean())
        m[f"MLP_node_gt_slope_{t}"] = float(-ds.network.homeostasis_lambda[t])

    emb = model.embedding.detach().cpu().numpy()
    labels = M.dbscan(emb, DBSCAN_EPS, DBSCAN_MIN)
    m["embedding_cluster_acc"], m["embedding_n_clusters"] = M.cluster_accuracy(types, labels)
    curves["embedding"], curves["embedding_labels"] = emb, labels
    return Evaluation(m, corrected, outliers, true, pred, curves)
