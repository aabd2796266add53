"""The lab's model (SPEC §2) and its named variants, in one vectorised module.

dc/dt = S v + MLP_node(c_i, a_i), v_j = 10^log_k_j * g(aggregate over substrate edges of MLP_sub(c_i, |s_ij|)).
`softplus` says where positivity is imposed: `after_product` (the lab: g = softplus of the product, so a
reaction whose substrates are all zero still runs at softplus(0) = 0.69 k), `per_edge` (softplus on each
message, product after: a zero substrate can stop its reaction), or `none`.
`gate`: `concentration` multiplies each message by its c (msg = c softplus(MLP_sub)), so a zero substrate
stops its reaction exactly rather than at softplus's floor, which MLP_node otherwise learns to cancel.
`unidentifiable` says how the scores read the k that the data cannot fix (shared monomials, no edges):
`learned` (the lab: as trained) or `structural` (SPEC §6's rule, known from S before training).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..network import Network
from .base import Output, RateModel, mlp

LOG_FLOOR = 1e-8  # the lab clamps |msg| before the log of the product


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
        unidentifiable: str = "learned",
        gate: str = "none",
    ):
        super().__init__()
        if softplus not in ("after_product", "per_edge", "none"):
            raise ValueError(f"model.softplus={softplus}: must be after_product, per_edge or none")
        if aggregation not in ("mul", "add"):
            raise ValueError(f"model.aggregation={aggregation}: must be mul or add")
        if node_init not in ("all_zero", "last_layer", "default"):
            raise ValueError(f"model.node_init={node_init}: must be all_zero, last_layer or default")
        if unidentifiable not in ("learned", "structural"):
            raise ValueError(f"model.unidentifiable={unidentifiable}: must be learned or structural")
        if gate not in ("none", "concentration"):
            raise ValueError(f"model.gate={gate}: must be none or concentration")
        self.softplus, self.aggregation, self.unidentifiable, self.gate = softplus, aggregation, unidentifiable, gate
        n_met, n_rxn = net.n_metabolites, net.n_reactions
        self.sub = mlp([2] + [hidden_dim_sub] * (n_layers_sub - 1) + [1])
        self.node_mlp = mlp([1 + embedding_dim] + [hidden_dim_node] * (n_layers_node - 1) + [1])
        self.embedding = nn.Parameter(torch.randn(n_met, embedding_dim) * 0.1)
        self.log_k = nn.Parameter(torch.empty(n_rxn).uniform_(*log_k_init))
        linears = [m for m in self.node_mlp if isinstance(m, nn.Linear)]
        zeroed = linears if node_init == "all_zero" else linears[-1:] if node_init == "last_layer" else []
        with torch.no_grad():
            for layer in zeroed:
                layer.weight.zero_()
                layer.bias.zero_()

        # MLP_sub depends only on (metabolite, |s|): evaluate it once per distinct pair, not per edge.
        edges = net.substrate_edges
        pairs, edge_to_pair = np.unique(edges[:, [0, 2]], axis=0, return_inverse=True)
        self.register_buffer("pair_met", torch.as_tensor(pairs[:, 0], dtype=torch.long))
        self.register_buffer("pair_pow", torch.as_tensor(pairs[:, 1], dtype=torch.float32))
        self.register_buffer("edge_pair", torch.as_tensor(edge_to_pair.reshape(-1), dtype=torch.long))
        incidence = torch.zeros(len(edges), n_rxn)  # edge -> reaction, for the per-reaction sum
        incidence[torch.arange(len(edges)), torch.as_tensor(edges[:, 1])] = 1.0
        self.register_buffer("incidence", incidence)
        self.register_buffer("S_T", torch.as_tensor(net.S.T, dtype=torch.float32))

    def forward(self, c: torch.Tensor, sub_queries: torch.Tensor | None = None) -> Output:
        batch = c.shape[0]
        x = torch.stack([c[:, self.pair_met], self.pair_pow.expand(batch, -1)], dim=-1).reshape(-1, 2)
        if sub_queries is not None:  # regularisers' points ride along in the same MLP_sub call
            x = torch.cat([x, sub_queries], dim=0)
        out = self.sub(x).squeeze(-1)
        if self.softplus == "per_edge":  # the message is softplus(MLP_sub): regularisers see the message too
            out = F.softplus(out)
        if self.gate == "concentration":
            out = out * x[:, 0]
        n_pair = batch * len(self.pair_met)
        msg = out[:n_pair].reshape(batch, -1)[:, self.edge_pair]  # (B, E)
        if self.aggregation == "mul":
            agg = torch.exp(torch.log(msg.abs().clamp_min(LOG_FLOOR)) @ self.incidence)
        else:
            agg = msg @ self.incidence
        if self.softplus == "after_product":
            agg = F.softplus(agg)
        v = agg * torch.pow(10.0, self.log_k)
        node = self.homeostasis(c)
        return Output(v @ self.S_T + node, node, out[n_pair:] if sub_queries is not None else None)

    def substrate(self, c: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
        """The per-edge message the product uses (softplus and gate applied), so alpha and the fitted
        exponent judge what the rates actually see."""
        msg = super().substrate(c, s)
        msg = F.softplus(msg) if self.softplus == "per_edge" else msg
        return msg * c if self.gate == "concentration" else msg
