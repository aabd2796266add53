"""What the training loop minimises: one model's loss terms on one batch, by name (SPEC §3, §9).

A module around the model, so that a batch of models runs it as one vmapped call (`models.stacked`): the
per-model settings (coefficients, k_floor_threshold) come in as arguments, everything shared is held here."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from . import losses as L

# The regularisers in the order the history lists them, each with the coefficient that weighs it.
COEFFICIENTS = {"MLP_sub_diff": "coeff_MLP_sub_diff", "MLP_sub_norm": "coeff_MLP_sub_norm",
                "MLP_node_L1": "coeff_MLP_node_L1", "k_floor": "coeff_k_floor", "k_range": "coeff_k_range",
                "S_L1": "coeff_S_L1", "S_integer": "coeff_S_integer", "mass_conservation": "coeff_mass_conservation"}
PER_MODEL_SETTINGS = (*COEFFICIENTS.values(), "k_floor_threshold")
S_TERMS = tuple(L.S_PENALTIES)  # learned stoichiometry's regularisers


class Objective(nn.Module):
    """`forward(c, target, settings)` -> {"prediction": ..., regulariser: coefficient * penalty, "k_prior": ...}.

    mode `derivative`: c (B, n) frames, target their exact dc/dt; `recurrent`: target the frames `time_step`
    later; `window`: c (B, n) observed window starts, target (window, B, n) the window's observations (the loss
    matches those at `offsets`; driven boundary species follow all of them)."""

    def __init__(self, model: nn.Module, mode: str, terms: list[str], queries: torch.Tensor | None, *,
                 delta_t: float = 0.0, time_step: int = 1, substeps: int = 1, dt: float = 0.0, interval: float = 0.0,
                 window: int = 0, offsets: torch.Tensor | None = None, err_scale: torch.Tensor | None = None,
                 k_err_scale: torch.Tensor | None = None,
                 log_k_range: tuple[float, float] = (0.0, 0.0), n_reactions: int = 0,
                 step: Callable | None = None, forced: torch.Tensor | None = None):
        super().__init__()
        self.model, self.mode, self.terms = model, mode, list(terms)
        # the call that advances the model (a torch.compile'd wrapper sharing its parameters, or the model):
        # kept out of the module's registry so the parameters are listed once, under model.*
        self.__dict__["step"] = step if step is not None else model
        self.register_buffer("queries", queries)
        self.register_buffer("offsets", offsets)
        self.register_buffer("err_scale", err_scale)
        self.register_buffer("k_err_scale", k_err_scale)  # error_scale=relative_k: the weights k's gradient sees
        self.register_buffer("forced", forced)  # window mode: driven boundary species follow the observations
        self.delta_t, self.time_step, self.substeps, self.dt = delta_t, time_step, substeps, dt
        self.interval, self.window = interval, window
        self.log_k_range, self.n_reactions = log_k_range, n_reactions

    def forward(self, c: torch.Tensor, target: torch.Tensor, settings: dict) -> dict[str, torch.Tensor]:
        model = self.model
        if self.mode == "window":  # rollouts from observed states, matched at the observations of the window
            course = None if self.forced is None else target[..., self.forced]
            states, out = L.roll_windows(self.step, c, self.window, self.substeps, self.dt, self.queries,
                                         self.forced, course)
            err = self.err_scale
            pred = L.window_loss(states[self.offsets - 1] * err, target[self.offsets - 1] * err, self.interval)
        elif self.mode == "recurrent":  # roll forward; the regularisers see the last step's outputs
            for _ in range(self.time_step):
                out = self.step(c, self.queries)
                c = c + self.delta_t * out.dcdt
            span = self.delta_t * self.time_step
            pred = L.prediction_loss(c / span, target / span, self.err_scale)
        else:
            out = self.step(c, self.queries)
            pred = L.prediction_loss(out.dcdt, target, self.err_scale)  # relative: small metabolites count too
            if self.k_err_scale is not None:  # relative_k: k's gradient from weighted errors, the MLPs' from absolute
                on_k = model.through_k(out)  # out.dcdt's values; its graph reaches log_k alone
                pred = pred + L.prediction_loss(on_k, target, self.k_err_scale) - L.prediction_loss(on_k, target)
        terms = {"prediction": pred}
        sto = model.coefficients() if any(n in S_TERMS for n in self.terms) else None  # once for the S terms
        penalties: dict[str, Callable[[], torch.Tensor]] = {
            "MLP_sub_diff": lambda: L.sub_diff_penalty(out.sub_queries),
            "MLP_sub_norm": lambda: L.sub_norm_penalty(out.sub_queries),
            "MLP_node_L1": lambda: L.node_l1_penalty(out.node),
            "k_floor": lambda: L.k_floor_penalty(model.log_k, settings["k_floor_threshold"]),
            "k_range": lambda: L.k_range_penalty(model.log_k, *self.log_k_range),
            **{name: (lambda f=f: f(sto, model.sto_rxn, self.n_reactions)) for name, f in L.S_PENALTIES.items()},
        }
        for name in self.terms:
            terms[name] = settings[COEFFICIENTS[name]] * penalties[name]()
        prior = model.prior_penalty()  # the model's own prior on the k the data leave free
        if prior is not None:
            terms["k_prior"] = prior
        return terms


SUB_TERMS = ("MLP_sub_diff", "MLP_sub_norm")  # regularisers of MLP_sub


def active_terms(settings: list[dict], learned_S: bool, has_sub: bool = True) -> list[str]:
    """The regularisers any of the models weighs (> 0); the S terms only where S is learned, MLP_sub's only
    where the model has one."""
    return [name for name, key in COEFFICIENTS.items()
            if any(float(s.get(key) or 0.0) > 0 for s in settings) and (learned_S or name not in S_TERMS)
            and (has_sub or name not in SUB_TERMS)]
