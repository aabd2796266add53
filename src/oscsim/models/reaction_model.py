"""The lab's model (SPEC §2) and its named variants, in one vectorised module.

dc/dt = S v + MLP_node(c_i, a_i), v_j = 10^log_k_j * g(aggregate over substrate edges of msg(c_i, |s_ij|)).
Each option is one change a `conf/model/` entry names:
- `softplus`: where positivity is imposed: `after_product` (the lab: g = softplus of the product, so a reaction
  whose substrates are all zero still runs at softplus(0) = 0.69 k), `per_edge` (msg = softplus(MLP_sub)), `none`.
- `gate`: how a zero substrate stops its reaction: `none`; `concentration` (msg = c softplus(MLP_sub): builds
  the factor c^1 into the form, so the |s|=1 exponent is imposed, not learned); `origin` (msg(c) = h(c) - h(0):
  exactly zero at c = 0, the growth with c left to MLP_sub).
- `tie`: `none` (one k per reaction, the lab) or `same_column` (reactions with the same substrate monomial and
  the same S column share one k: the data only ever see their sum).
- `stoichiometry`: `given` (S frozen, the lab's default) or `learned` (SPEC §8, the lab's
  `freeze_stoichiometry: false`): the edge sets stay given, one signed coefficient per edge of S is learned from
  randn * 0.1, and each substrate edge's exponent is |coefficient| of the same (metabolite, reaction) pair. S
  is then unknown, so no k is tied; the prior covers every reaction that is unidentifiable from the edges.
- `exponent`: how |s| enters: `input` (the lab: MLP_sub's second input, a free function of it), `power`
  (msg(c, |s|) = msg(c, 1)^|s|, the mass-action structure c^s = (c^1)^s with msg(c, 1) learned) or `auto`
  (power with learned S, input with S given). With learned S only `power` makes the exponent matter: with
  `input`, MLP_sub(c, a|s|) can undo any rescaling a of a reaction's coefficients (k / a absorbs the rest), so
  the scale of learned coefficients is never fixed.
- `sto_init`, `sto_gauge`, `sto_param` (learned S only): the coefficients' start (the lab's randn * 0.1, or a
  random sign at magnitude 1), the convention that fixes the one global scale the data leave free (median
  |s| = 1), and what the optimiser moves (the coefficient, or the edge's signed rate s k, s = rate / k).
- `k_prior`: weight of a Gaussian prior, centred on the middle of the regime's known log10 k range, on the
  alpha-corrected k (the estimate the metrics read) of the parameters the data leave free along some direction
  (no substrate, a zero S column, a monomial shared with another column). What S implies lives here, in the
  model; nothing is replaced after training.
The scale MLP_sub takes at c = 1 trades against every k (the lab's alpha correction undoes it). Fixing it in
the form (msg(1) = 1 by division) was tried and trains badly with the origin gate (identifiable R^2 0.48 vs
0.9997 at 7,200 iterations): dividing by h(1) - h(0), tiny at initialisation, makes MLP_sub's steps huge.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..network import Network, k_structure
from .base import Output, RateModel, mlp

LOG_FLOOR = 1e-8  # the lab clamps |msg| before the log of the product

CHOICES = {
    "softplus": ("after_product", "per_edge", "none"),
    "aggregation": ("mul", "add"),
    "node_init": ("all_zero", "last_layer", "default"),
    "gate": ("none", "concentration", "origin"),
    "tie": ("none", "same_column"),
    "stoichiometry": ("given", "learned"),
    "exponent": ("input", "power", "auto"),
    "sto_init": ("lab", "unit"),
    "sto_gauge": ("none", "median"),
    "sto_param": ("coefficient", "rate"),
}


class ReactionModel(RateModel):
    def __init__(
        self,
        net: Network,
        hidden_dim_sub: int = 64,
        n_layers_sub: int = 3,
        hidden_dim_node: int = 64,
        n_layers_node: int = 3,
        embedding_dim: int = 2,
        softplus: str = "after_product",
        aggregation: str = "mul",
        node_init: str = "all_zero",
        log_k_init: tuple[float, float] = (-2.0, 1.0),
        gate: str = "none",
        tie: str = "none",
        k_prior: float = 0.0,
        stoichiometry: str = "given",
        exponent: str = "input",
        sto_init: str = "lab",
        sto_gauge: str = "none",
        sto_param: str = "coefficient",
        log_k_range: tuple[float, float] = (-2.0, -1.0),
    ):
        super().__init__()
        for key, value in (("softplus", softplus), ("aggregation", aggregation), ("node_init", node_init),
                           ("gate", gate), ("tie", tie), ("stoichiometry", stoichiometry),
                           ("exponent", exponent), ("sto_init", sto_init), ("sto_gauge", sto_gauge), ("sto_param", sto_param)):
            if value not in CHOICES[key]:
                raise ValueError(f"model.{key}={value}: must be one of {', '.join(CHOICES[key])}")
        if not k_prior >= 0:
            raise ValueError(f"model.k_prior={k_prior}: must be >= 0")
        self.softplus, self.aggregation, self.gate = softplus, aggregation, gate
        self.k_prior, self.k_prior_mean = float(k_prior), 0.5 * (log_k_range[0] + log_k_range[1])
        n_met = net.n_metabolites
        self.sub = mlp([2] + [hidden_dim_sub] * (n_layers_sub - 1) + [1])
        self._init_node(n_met, hidden_dim_node, n_layers_node, embedding_dim, node_init)  # (the lab's RNG order)
        self.learned_S, self.sto_gauge = stoichiometry == "learned", sto_gauge
        # auto: power with learned S (the input form cannot fix the coefficients' scale), the lab's input otherwise
        self.exponent = ("power" if self.learned_S else "input") if exponent == "auto" else exponent
        self.sto_param = sto_param
        structure = k_structure(net, tie=tie == "same_column" and not self.learned_S)
        self.log_k_param = nn.Parameter(torch.empty(structure.n_params).uniform_(*log_k_init))
        self.register_buffer("k_index", torch.as_tensor(structure.index, dtype=torch.long))
        in_order = np.array_equal(structure.index, np.arange(net.n_reactions))  # then log_k is log_k_param
        self.register_buffer("k_spread", None if in_order else F.one_hot(self.k_index, structure.n_params).T.float(),
                             persistent=False)
        self.register_buffer("k_prior_mask", torch.as_tensor(structure.prior))
        self.has_prior = self.k_prior > 0 and bool(structure.prior.any())  # fixed here: no test of a tensor per step
        # Edges of each power per parameter (tied reactions share their monomial), an edgeless one counted as one
        # |s|=1 edge as the alpha correction does: the prior acts on the estimate the metrics read.
        power_list = sorted({1.0, 2.0, *net.substrate_edges[:, 2].astype(float).tolist()})
        counts = np.zeros((net.n_reactions, len(power_list)))
        np.add.at(counts, (net.substrate_edges[:, 1], np.searchsorted(power_list, net.substrate_edges[:, 2])), 1.0)
        counts[net.n_substrates == 0, power_list.index(1.0)] = 1.0
        per_param = np.zeros((structure.n_params, len(power_list)))
        per_param[structure.index] = counts
        self.register_buffer("k_param_edges", torch.as_tensor(per_param, dtype=torch.float32))
        # MLP_sub depends only on (metabolite, |s|): evaluate it once per distinct pair, not per edge.
        edges = net.substrate_edges
        pairs, edge_to_pair = np.unique(edges[:, [0, 2]], axis=0, return_inverse=True)
        self.register_buffer("pair_met", torch.as_tensor(pairs[:, 0], dtype=torch.long))
        self.register_buffer("pair_pow", torch.as_tensor(pairs[:, 1], dtype=torch.float32))
        self.register_buffer("edge_pair", torch.as_tensor(edge_to_pair.reshape(-1), dtype=torch.long))
        incidence = torch.zeros(len(edges), net.n_reactions)  # edge -> reaction, for the per-reaction sum
        incidence[torch.arange(len(edges)), torch.as_tensor(edges[:, 1])] = 1.0
        self.register_buffer("incidence", incidence)
        # The same sums as a padded gather: row j lists reaction j's substrate edges (or their (metabolite, |s|)
        # pairs), padded with the index of an appended zero column. A reaction has a few edges; the dense (B, 510) x
        # (510, 256) product and its backward were ~5 % of a training step.
        per_rxn: list[list[int]] = [[] for _ in range(net.n_reactions)]
        for e, j in enumerate(edges[:, 1]):
            per_rxn[int(j)].append(e)
        width = max([1, *map(len, per_rxn)])
        rxn_edges = torch.tensor([r + [len(edges)] * (width - len(r)) for r in per_rxn], dtype=torch.long)
        self.register_buffer("rxn_edges", rxn_edges, persistent=False)
        to_pair = torch.cat([self.edge_pair, torch.tensor([len(pairs)])])
        self.register_buffer("rxn_pairs", to_pair[rxn_edges], persistent=False)
        self.register_buffer("S_T", torch.as_tensor(net.S.T, dtype=torch.float32))
        if self.learned_S:
            # One coefficient per edge of S (the lab's `sto_all`); substrate edges read their exponent from it.
            all_edges = net.signed_edges
            self.register_buffer("sto_met", torch.as_tensor(all_edges[:, 0], dtype=torch.long))
            self.register_buffer("sto_rxn", torch.as_tensor(all_edges[:, 1], dtype=torch.long))
            init = torch.randn(len(all_edges))
            if sto_init == "unit":  # a random sign at magnitude 1: every edge of a given edge set is a non-zero integer
                init = torch.sign(init) * (1.0 + 0.1 * torch.randn(len(all_edges)))
            self.sto = nn.Parameter(init * 0.1 if sto_init == "lab" else init)
            where = {(int(m), int(j)): i for i, (m, j, _) in enumerate(all_edges)}
            sub_to_sto = [where.get((int(m), int(j)), -1) for m, j, _ in edges]  # -1: no S entry, |s| stays given
            self.register_buffer("sub_to_sto", torch.as_tensor(sub_to_sto, dtype=torch.long))
            # Exponent = mix |s| + (1 - mix): the training loop may ramp mix from 0 to 1 (`S_exponent_ramp`) so the
            # signs and the per-edge rates settle before the exponents bind the coefficients' scale. A buffer, not
            # a Python float, so a compiled forward reads it without recompiling. 1 = SPEC §8 (|s| exactly).
            self.register_buffer("exponent_mix", torch.ones(()))
            # Edges whose coefficient training has settled at an integer (`S_round_at`): held at that value (past
            # the gauge, so exactly), their parameter given no gradient.
            self.register_buffer("sto_fixed", torch.zeros(len(all_edges), dtype=torch.bool))
            self.register_buffer("sto_fixed_value", torch.zeros(len(all_edges)))
        self.register_buffer("sub_met", torch.as_tensor(edges[:, 0], dtype=torch.long))
        self.register_buffer("sub_pow", torch.as_tensor(edges[:, 2], dtype=torch.float32))
        met_u, edge_met = np.unique(edges[:, 0], return_inverse=True)  # for exponent=power: rows per metabolite
        self.register_buffer("met_u", torch.as_tensor(met_u, dtype=torch.long))
        self.register_buffer("edge_met", torch.as_tensor(edge_met.reshape(-1), dtype=torch.long))
        # Anchor rows (c = 0 at |s| = 1, 2 and every power in the data), for the `origin` gate.
        powers = torch.as_tensor(sorted({1.0, 2.0, *pairs[:, 1].astype(float).tolist()}), dtype=torch.float32)
        self.register_buffer("powers", powers)
        self.register_buffer("anchors", torch.stack([torch.zeros_like(powers), powers], -1))

    def _messages(self, x: torch.Tensor, anchor_powers: torch.Tensor | None = None,
                  which: torch.Tensor | None = None) -> torch.Tensor:
        """msg(c, |s|) for input rows x = (c, |s|): MLP_sub with the entry's softplus and gate. The origin gate
        subtracts msg(0, |s|): rows (0, p) for p in `anchor_powers` (default: |s| = 1, 2 and the data's powers),
        row i using anchor `which[i]` (default: found by its |s|)."""
        origin = self.gate == "origin"
        if origin:  # the rows at c = 0 ride along in the same call
            powers = self.powers.to(x.dtype) if anchor_powers is None else anchor_powers
            x = torch.cat([x, torch.stack([torch.zeros_like(powers), powers], -1)])
        h = self.sub(x).squeeze(-1)
        if self.softplus == "per_edge":
            h = F.softplus(h)
        if self.gate == "concentration":
            h = h * x[:, 0]
        if origin:
            n_p = len(powers)
            h, at0 = h[:-n_p], h[-n_p:]
            if which is None:
                which = torch.searchsorted(powers, x[:-n_p, 1].contiguous())
            h = h - at0[which]
        return h

    def coefficients(self) -> torch.Tensor:
        """The learned coefficient of each edge of S, as the model uses it. With `sto_gauge=median` the raw
        parameters are divided by their median magnitude: with MLP_sub learned, (a S, k / a, msg^(1/a)) fits the
        data as well as (S, k, msg) for every a > 0, so one global scale of S is not in the data; this fixes it by
        the convention that the median edge has |s| = 1 (true wherever most coefficients are +-1)."""
        sto = torch.where(self.sto_fixed, self.sto.detach(), self.sto)
        if self.sto_param == "rate":  # the parameter is the edge's signed rate s k (scaled by the range's middle)
            sto = sto * torch.pow(10.0, self.k_prior_mean - self.log_k[self.sto_rxn])
        if self.sto_gauge == "median":
            sto = sto / sto.abs().median().clamp_min(1e-6)
        return torch.where(self.sto_fixed, self.sto_fixed_value.to(sto.dtype), sto)

    @torch.no_grad()
    def set_coefficients(self, edges: torch.Tensor, values: torch.Tensor, hold: bool = False) -> None:
        """Give edges these coefficients (`sto_param=coefficient`), held there from now on if `hold`; an edge
        already held keeps being held, at its new value."""
        gauge = self.sto.abs().median() if self.sto_gauge == "median" else 1.0
        self.sto[edges] = (values * gauge).to(self.sto.dtype)
        self.sto_fixed_value[edges] = values.to(self.sto_fixed_value.dtype)
        if hold:
            self.sto_fixed[edges] = True

    @torch.no_grad()
    def flip_coefficients(self, edges: torch.Tensor) -> None:
        """Change the sign of edges' coefficients (the gauge and `rate` scale by > 0: sign is the parameter's)."""
        self.sto[edges] *= -1
        self.sto_fixed_value[edges] *= -1

    def stoichiometry(self) -> torch.Tensor:
        """(n_met, n_rxn): the S the model uses (learned coefficients on the edge set, zero off it)."""
        if not self.learned_S:
            return self.S_T.T
        S = torch.zeros(self.S_T.shape[1], self.S_T.shape[0], dtype=self.sto.dtype, device=self.sto.device)
        return S.index_put((self.sto_met, self.sto_rxn), self.coefficients(), accumulate=True)

    def substrate_powers(self) -> torch.Tensor:
        """|s| of every substrate edge: given, or |learned coefficient| of the same (metabolite, reaction)."""
        learned = self.coefficients().abs()[self.sub_to_sto.clamp_min(0)]
        learned = self.exponent_mix * learned + (1.0 - self.exponent_mix)
        return torch.where(self.sub_to_sto >= 0, learned, self.sub_pow.to(learned.dtype))

    def edge_alphas(self) -> torch.Tensor:
        """|msg(1, |s_e|)| of every substrate edge at the exponent the forward uses (learned S: the learned one):
        the scale MLP_sub puts on each edge at c = 1, which the metrics undo."""
        powers = (self.substrate_powers() if self.learned_S else self.sub_pow).to(self.sub_pow.dtype)
        if self.exponent == "power":
            one = torch.ones(1, 2, dtype=powers.dtype, device=powers.device)
            return self._messages(one).abs() ** powers
        x = torch.stack([torch.ones_like(powers), powers], -1)
        return self._messages(x, powers, torch.arange(len(powers), device=powers.device)).abs()

    def forward(self, c: torch.Tensor, sub_queries: torch.Tensor | None = None) -> Output:
        S_T = self.stoichiometry().T.to(c.dtype)
        v, queried = self.rates(c, sub_queries)
        node = self.homeostasis(c)
        return Output(v @ S_T + node, node, queried, v)

    def through_k(self, out: Output) -> torch.Tensor:
        """out.dcdt's values with a graph into log_k alone (error_scale=relative_k): its gradient with respect to
        log_k is out.dcdt's, and nothing else gets one. dcdt = (agg 10^log_k) S^T + node, so a factor that is 1 in
        value and 10^log_k in gradient, on detached rates, is all k's path needs."""
        log_k = self.log_k
        dv = out.rates.detach() * (torch.pow(10.0, log_k - log_k.detach()) - 1.0)  # zero in value
        return out.dcdt.detach() + dv @ self.stoichiometry().T.detach().to(dv.dtype)

    def rates(self, c: torch.Tensor, sub_queries: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, n_rxn) reaction rates v at concentrations c, and MLP_sub at the regularisers' query points."""
        batch = c.shape[0]
        n_q = 0 if sub_queries is None else len(sub_queries)
        anchors = None
        if self.exponent == "power":  # msg(c, |s|) = msg(c, 1)^|s|: one MLP_sub row per substrate metabolite
            x = self._unit_rows(c)
        elif self.learned_S:  # exponents differ per edge: one MLP_sub row per edge, not per (metabolite, |s|)
            powers = self.substrate_powers().to(c.dtype)
            x = torch.stack([c[:, self.sub_met], powers.expand(batch, -1)], dim=-1).reshape(-1, 2)
            # the origin gate's anchors: (0, |s_e|) per edge, then (0, 1) for the regularisers' queries
            which = torch.cat([torch.arange(len(powers), device=c.device).repeat(batch),
                               torch.full((n_q,), len(powers), dtype=torch.long, device=c.device)])
            anchors = (torch.cat([powers, powers.new_ones(1)]), which)
        else:
            x = torch.stack([c[:, self.pair_met], self.pair_pow.to(c.dtype).expand(batch, -1)], dim=-1).reshape(-1, 2)
        if sub_queries is not None:  # regularisers' points ride along in the same MLP_sub call
            x = torch.cat([x, sub_queries.to(c.dtype)], dim=0)
        out = self._messages(x, *(anchors or (None, None)))
        rows = out[: x.shape[0] - n_q].reshape(batch, -1)
        if self.exponent == "power":
            powers = self.substrate_powers() if self.learned_S else self.sub_pow
            log_msg = powers.to(c.dtype) * self._log_unit_messages(rows)  # (B, E)
            agg = torch.exp(_per_reaction(log_msg, self.rxn_edges)) if self.aggregation == "mul" else \
                _per_reaction(torch.exp(log_msg), self.rxn_edges)
        else:  # rows: one per edge (learned S) or per (metabolite, |s|) pair
            index = self.rxn_edges if self.learned_S else self.rxn_pairs
            agg = torch.exp(_per_reaction(torch.log(rows.abs().clamp_min(LOG_FLOOR)), index)) \
                if self.aggregation == "mul" else _per_reaction(rows, index)
        if self.softplus == "after_product":
            agg = F.softplus(agg)
        return agg * torch.pow(10.0, self.log_k), (out[x.shape[0] - n_q:] if sub_queries is not None else None)

    def _unit_rows(self, c: torch.Tensor) -> torch.Tensor:
        return torch.stack([c[:, self.met_u], torch.ones_like(c[:, self.met_u])], dim=-1).reshape(-1, 2)

    def _log_unit_messages(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.log(rows[:, self.edge_met].abs().clamp_min(LOG_FLOOR))

    @property
    def rates_are_monomials(self) -> bool:
        """v_j = k_j prod_e msg(c_e, 1)^|s_e| exactly: a reaction's rate at other exponents, or another k, is known
        from log_unit_messages alone (what `sign_flips`' reset moves need)."""
        return self.exponent == "power" and self.aggregation == "mul" and self.softplus != "after_product"

    def log_unit_messages(self, c: torch.Tensor) -> torch.Tensor:
        """(B, n_substrate_edges) log |msg(c_e, 1)| of every substrate edge (exponent=power)."""
        rows = self._messages(self._unit_rows(c)).reshape(c.shape[0], -1)
        return self._log_unit_messages(rows)

    def substrate(self, c: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
        """The per-edge message the product uses (softplus and gate applied), so alpha and the fitted
        exponent judge what the rates actually see."""
        if self.exponent == "power":
            return self._messages(torch.stack([c, torch.ones_like(c)], dim=-1)).abs() ** s
        s = torch.as_tensor(s, dtype=c.dtype, device=c.device).expand_as(c)
        return self._messages(torch.stack([c, s], dim=-1))

    def prior_residuals(self) -> torch.Tensor:
        """(n_params,) alpha-corrected log k minus the prior's centre where the prior acts, 0 elsewhere: the prior
        penalty is k_prior times their sum of squares."""
        powers = self.powers.to(self.log_k_param.dtype)  # every power at once: one MLP_sub call
        log_alpha = torch.log10(self.substrate(torch.ones_like(powers), powers).abs().clamp_min(LOG_FLOOR))
        corrected = self.log_k_param + self.k_param_edges @ log_alpha
        return torch.where(self.k_prior_mask, corrected - self.k_prior_mean, torch.zeros_like(corrected))

    def prior_penalty(self) -> torch.Tensor | None:
        if not self.has_prior:
            return None
        return self.k_prior * (self.prior_residuals() ** 2).sum()


def _per_reaction(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, n) values per edge (or pair) -> (B, n_rxn): each reaction's sum over the columns `index` lists for it
    (padded with n, the index of a zero column appended here)."""
    padded = torch.cat([values, values.new_zeros(*values.shape[:-1], 1)], -1)
    return padded[..., index].sum(-1)
