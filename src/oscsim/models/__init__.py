"""Models of the `model` config group. Add one by registering a class under a `kind` name."""
from __future__ import annotations

from typing import Any, Mapping

from ..network import Network
from .base import Output, RateModel
from .reaction_model import ReactionModel

MODELS: dict[str, type[RateModel]] = {"reaction": ReactionModel}


def build_model(net: Network, model_cfg: Mapping[str, Any], **sizes: int) -> RateModel:
    """Instantiate the model a `model` group entry names (`kind`), with the lab's size keys."""
    opts = {k: v for k, v in model_cfg.items() if k not in ("name", "kind", "description")}
    kind = model_cfg.get("kind", "reaction")
    if kind not in MODELS:
        raise ValueError(f"model.kind={kind}: must be one of {', '.join(MODELS)}")
    if "log_k_init" in opts:
        opts["log_k_init"] = tuple(opts["log_k_init"])
    return MODELS[kind](net, **sizes, **opts)


__all__ = ["MODELS", "Output", "RateModel", "ReactionModel", "build_model"]
