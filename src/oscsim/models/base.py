"""The interface every model of the `model` config group implements, so the training loop never changes."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class Output:
    dcdt: torch.Tensor  # (B, n_met) predicted derivative
    node: torch.Tensor  # (B, n_met) homeostasis term (MLP_node output)
    sub_queries: torch.Tensor | None  # (Q,) MLP_sub at extra (c, |s|) points, for regularisers
    rates: torch.Tensor | None = None  # (B, n_rxn) reaction rates, where the model has them (error_scale=relative_k)


class RateModel(nn.Module):
    """Learns log10 k (one per reaction), MLP_sub (substrate term) and MLP_node (homeostasis).

    k is held as `log_k_param` (one value per parameter) and read per reaction through `k_index`, so reactions
    that S says act only through their sum can share one parameter."""

    log_k_param: nn.Parameter
    k_index: torch.Tensor
    k_spread: torch.Tensor | None  # (n_params, n_reactions): 1 where reaction j reads parameter i; None: untied
    sub: nn.Module
    node_mlp: nn.Module
    embedding: nn.Parameter

    @property
    def log_k(self) -> torch.Tensor:
        """log10 k of every reaction: what the model holds, what is saved and scored."""
        # a product with the 0/1 matrix k_spread (exact in value) rather than log_k_param[k_index]: compiled in a
        # vmapped batch, torch 2.13's inductor dropped parts of the indexing's gradient (tests/test_batched.py)
        return self.log_k_param.clone() if self.k_spread is None else self.log_k_param @ self.k_spread

    def prior_penalty(self) -> torch.Tensor | None:
        """The model's prior on the k the data leave free (None: no prior)."""
        return None

    def forward(self, c: torch.Tensor, sub_queries: torch.Tensor | None = None) -> Output:  # pragma: no cover
        raise NotImplementedError

    def substrate(self, c: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
        """MLP_sub's output for concentrations c at stoichiometric power s (what the metrics inspect)."""
        s = torch.as_tensor(s, dtype=c.dtype, device=c.device).expand_as(c)
        return self.sub(torch.stack([c, s], dim=-1)).squeeze(-1)

    node_dead: bool = False  # MLP_node's weights are all zero and stay zero (see ReactionModel's node_init)
    node_off: bool = False  # no homeostasis term at all (node_init=none: a real network has none)

    def _init_node(self, n_met: int, hidden_dim: int, n_layers: int, embedding_dim: int, node_init: str) -> None:
        """MLP_node(c_i, a_i) and the embeddings a_i, with the entry's zeroed layers (`node_init`)."""
        self.node_mlp = mlp([1 + embedding_dim] + [hidden_dim] * (n_layers - 1) + [1])
        self.embedding = nn.Parameter(torch.randn(n_met, embedding_dim) * 0.1)
        linears = [m for m in self.node_mlp if isinstance(m, nn.Linear)]
        zeroed = linears if node_init in ("all_zero", "none") else linears[-1:] if node_init == "last_layer" else []
        with torch.no_grad():
            for layer in zeroed:
                layer.weight.zero_()
                layer.bias.zero_()
        # The lab's seed-era MLP_node: with every layer zero, every hidden activation is 0, so no weight (nor the
        # embedding) ever gets a non-zero gradient and Adam never moves them: MLP_node is its last bias, a
        # constant. Computed as such, exactly, instead of as ~40 % of a training step's arithmetic.
        self.node_dead = node_init == "all_zero"
        self.node_off = node_init == "none"

    def homeostasis(self, c: torch.Tensor) -> torch.Tensor:
        """MLP_node(c_i, a_i) for c of shape (..., n_met)."""
        if self.node_off:
            return torch.zeros_like(c)
        if self.node_dead:  # every hidden activation is tanh(0) = 0: the output is the last layer's bias, exactly
            return self.node_mlp[-1].bias.expand(c.shape)
        # the input (c_i, a_i) split: a_i's part of the first layer depends on the metabolite alone (MLP.forward)
        return self.node_mlp(c.unsqueeze(-1), shared=self.embedding).squeeze(-1)

    def param_groups(self, lr_k: float, lr_node: float, lr_sub: float, lr_embedding: float | None,
                     lr_S: float | None = None) -> list[dict]:
        """Adam's four groups, as the lab's trainer has them, and learned stoichiometry's own (`lr_S`)."""
        sto = [{"params": [self.sto], "lr": lr_S or lr_k, "name": "S"}] if isinstance(getattr(self, "sto", None), nn.Parameter) else []
        return sto + [
            {"params": [self.log_k_param], "lr": lr_k, "name": "k"},
            {"params": list(self.node_mlp.parameters()), "lr": lr_node, "name": "MLP_node"},
            {"params": [self.embedding], "lr": lr_embedding or lr_node, "name": "embedding"},
            {"params": list(self.sub.parameters()), "lr": lr_sub, "name": "MLP_sub"},
        ]


class Tanh(nn.Module):
    """tanh(x) = 2 sigmoid(2x) - 1, within 2e-7 of torch.tanh in float32: torch's CPU tanh kernel costs about six
    sigmoids here (165 µs per 64k values, sigmoid 27 µs). Plain ops, so vmap (batched trials) and torch.compile see
    through it. Inside an `MLP` the factor on its input goes into the layer before it instead (MLP.forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x * 2) * 2 - 1


class MLP(nn.Sequential):
    """Linear layers with tanh between them, as `mlp` builds them (the lab's `mlp`: same layers, same parameters, same
    state dict).

    forward computes what the layers compute one by one, to the bit, in fewer passes over the activations: each
    tanh is 2 sigmoid(2 z) - 1 (`Tanh`), and 2 z = (2 W) h + 2 b exactly (doubling is exact in floating point), so
    the 2 goes into the 64 x 64 weights instead of the ~1,000 x 64 activations, and 2 s - 1 is one op. Two
    elementwise passes per hidden layer instead of four, forward and backward.

    `shared` (..., n, d) are further inputs that every row along x's second-to-last axis shares (MLP_node's
    embeddings: one per metabolite, the same in every frame): the first layer reads cat(x, shared) as
    x W_x + (shared W_s + b), the second term computed once per metabolite rather than once per frame and its
    gradient summed over the frames, with no product against the 3-wide input (the same values within float32
    rounding)."""

    def forward(self, x: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        first, *rest = [m for m in self if isinstance(m, nn.Linear)]
        scale = 2 if rest else 1  # a hidden layer's tanh wants 2 z
        if shared is None:
            z = F.linear(x, scale * first.weight, scale * first.bias)
        else:
            w, k = scale * first.weight, x.shape[-1]
            # one column: an outer product, which as a (rows, 1) x (1, n) matrix product costs ~4x the multiply
            own = x * w[:, 0] if k == 1 else F.linear(x, w[:, :k])
            z = own + F.linear(shared, w[:, k:], scale * first.bias)
        if not rest:
            return z
        *hidden, last = rest
        minus_one = z.new_full((), -1.0)
        x = torch.add(minus_one, torch.sigmoid(z), alpha=2)
        for layer in hidden:
            x = torch.add(minus_one, torch.sigmoid(F.linear(x, 2 * layer.weight, 2 * layer.bias)), alpha=2)
        return last(x)


def mlp(sizes: list[int]) -> MLP:
    """Linear layers with tanh between them and no final activation (the lab's `mlp`)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(Tanh())
    return MLP(*layers)
