"""Models of the `model` config group. Add one by registering a class under a `kind` name."""
from __future__ import annotations

from typing import Any, Mapping

from ..network import Network
from .base import Output, RateModel
from .michaelis_menten import MichaelisMentenModel
from .reaction_model import ReactionModel

MODELS: dict[str, type[RateModel]] = {"reaction": ReactionModel, "michaelis_menten": MichaelisMentenModel}


def build_model(net: Network, model_cfg: Mapping[str, Any], log_k_range: tuple[float, float], **sizes: int) -> RateModel:
    """Instantiate the model a `model` group entry names (`kind`), with the lab's size keys and the regime's
    known log10 k range (what a prior on k is centred on)."""
    opts = {k: v for k, v in model_cfg.items() if k not in ("name", "kind", "description")}
    kind = model_cfg.get("kind", "reaction")
    if kind not in MODELS:
        raise ValueError(f"model.kind={kind}: must be one of {', '.join(MODELS)}")
    for key in ("log_k_init", "log_km_init"):
        if key in opts:
            opts[key] = tuple(opts[key])
    return MODELS[kind](net, **sizes, **opts, log_k_range=tuple(log_k_range))


__all__ = ["MODELS", "MichaelisMentenModel", "Output", "RateModel", "ReactionModel", "build_model"]
