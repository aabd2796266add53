"""Where the configs live, the keys a trial is defined by, and the value checks every command runs
(`validate`: one line naming the key). The command-line entry that reports them is `oscsim.cli`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from .observation import AUTO_LONG_WINDOW
from .params import ConfigError, ObservationParams, SimulationParams

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# The lab's `Config:` keys in the lab's order, then the other training keys a trial is defined by
# (TensorBoard's hparams and the experiment log's Config: line both list them).
LAB_CONFIG_KEYS = ("seed", "lr_k", "lr_node", "lr_sub", "batch_size", "n_epochs", "data_augmentation_loop",
                   "coeff_MLP_node_L1", "coeff_MLP_sub_norm", "coeff_k_floor")
EXTRA_CONFIG_KEYS = ("coeff_MLP_sub_diff", "k_floor_threshold", "time_step", "recurrent_training", "hidden_dim_sub",
                     "n_layers_sub", "hidden_dim_node", "n_layers_node", "lr_embedding")

# What may differ between configurations trained together as one vectorised model (`batched=true`): scalars
# each model holds for itself. Anything else (sizes, data, model form, schedule length) needs its own run.
BATCHABLE_KEYS = ("seed", "lr_k", "lr_node", "lr_sub", "lr_embedding", "lr_S", "coeff_MLP_node_L1",
                  "coeff_MLP_sub_norm", "coeff_k_floor", "coeff_MLP_sub_diff", "coeff_k_range", "coeff_S_L1",
                  "coeff_S_integer", "coeff_mass_conservation", "k_floor_threshold")
# Keys that say where or how a run reports, not what it trains.
_RUN_KEYS = ("sweep_trial", "seeds", "batched", "batch_file", "progress", "plots", "tensorboard", "export_sbml")

# `${oscsim.mul:a,b}`: the lab's batch plans double a value (data_augmentation_loop 1000 -> 2000) relative
# to whatever the command line set.
if not OmegaConf.has_resolver("oscsim.mul"):
    OmegaConf.register_new_resolver("oscsim.mul", lambda a, b: a * b)

# key: (check, allowed-range text). Checked on every composed config, before any work.
_POSITIVE = (lambda v: v > 0, "> 0")
_NONNEG = (lambda v: v >= 0, ">= 0")
TRAINING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "lr_k": _POSITIVE, "lr_node": _POSITIVE, "lr_sub": _POSITIVE,
    "lr_embedding": (lambda v: v is None or v > 0, "> 0, or null for lr_node"),
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "n_epochs": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "data_augmentation_loop": _POSITIVE,
    "time_step": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "recurrent_training": (lambda v: isinstance(v, bool), "true or false"),
    "hidden_dim_sub": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "hidden_dim_node": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "n_layers_sub": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "n_layers_node": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "coeff_MLP_node_L1": _NONNEG, "coeff_MLP_sub_norm": _NONNEG, "coeff_k_floor": _NONNEG,
    "coeff_MLP_sub_diff": _NONNEG, "coeff_k_range": _NONNEG,
    "coeff_S_L1": _NONNEG, "coeff_S_integer": _NONNEG, "coeff_mass_conservation": _NONNEG,
    "lr_S": (lambda v: v is None or v > 0, "> 0, or null for lr_k"),
    "S_exponent_ramp": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "S_flip_every": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: no sign-flip moves)"),
    "S_round_at": (lambda v: 0 <= v < 1, "in [0, 1) (0: never)"),
    "lr_schedule": (lambda v: v in ("constant", "cosine"), "constant or cosine"),
    "k_floor_threshold": (lambda v: -10 <= v <= 10, "in [-10, 10]"),
    "threads": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "eval_every": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "rollout_frames": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "compile": (lambda v: v in (True, False, "auto"), "true, false or auto"),
    "rollout_dtype": (lambda v: v in ("float32", "float64"), "float32 or float64"),
    "window": (lambda v: v == "auto" or isinstance(v, int) and 0 <= v <= 1000,
               "an integer in [0, 1000] (0: fit exact dc/dt) or auto"),
    "match_every": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "error_scale": (lambda v: v in ("absolute", "relative", "relative_k"), "absolute, relative or relative_k"),
    "start_smoothing": (lambda v: v == "auto" or isinstance(v, int) and 0 <= v <= 100, "an integer in [0, 100] or auto"),
    "heldout_fraction": (lambda v: 0 <= v <= 0.5, "in [0, 0.5]"),
    "heldout_window": (lambda v: isinstance(v, int) and 1 <= v <= 1000, "an integer in [1, 1000]"),
    "batched": (lambda v: isinstance(v, bool), "true or false"),
    "optimizer": (lambda v: v in ("adam", "lbfgs"), "adam or lbfgs"),
    "lbfgs_steps": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "seeds": (lambda v: v is None or (len(v) >= 1 and all(isinstance(x, int) and x >= 0 for x in v)),
              "null or a non-empty list of integers >= 0"),
}


def simulation_params(cfg: DictConfig) -> SimulationParams:
    """The dataset's settings: a simulated regime's, or those of a user's data set (`simulation.path`)."""
    sim = OmegaConf.to_container(cfg.simulation, resolve=True)
    ObservationParams.from_mapping(sim)
    if sim.get("network") == "sbml":
        from .sbml import sbml_params

        return sbml_params(sim)[0]
    if is_user_data(sim):
        from .datafile import user_data

        return user_data(sim)[0]
    return SimulationParams.from_mapping(sim)


def is_user_data(sim: Any) -> bool:
    """True when the `simulation` group names a user's data set (its `path`) rather than a network to simulate."""
    return sim.get("path") is not None and sim.get("network", "oscillatory") != "sbml"


def observation_params(cfg: DictConfig) -> ObservationParams:
    return ObservationParams.from_mapping(OmegaConf.to_container(cfg.simulation, resolve=True))


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line, naming the key and its allowed range) for the first bad value."""
    simulation_params(cfg)
    for key, (ok, allowed) in TRAINING_RULES.items():
        if key not in cfg:
            continue
        value = cfg[key]
        try:
            good = bool(ok(value))
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"{key}={value}: must be {allowed}")
    if "device" in cfg and str(cfg.device) not in ("auto", "cpu") and not str(cfg.device).startswith("cuda"):
        raise ConfigError(f"device={cfg.device}: must be auto, cpu or cuda[:N]")


def max_window(cfg: DictConfig) -> int:
    """The rollout window's length in observation intervals (0: fit exact dc/dt); `auto` (chosen from the data's
    noise when training starts, `observation.auto_settings`) counts as its longest choice."""
    w = cfg.get("window") or 0
    return AUTO_LONG_WINDOW if w == "auto" else int(w)


def check_training_data(cfg: DictConfig) -> None:
    """Training on what is only observed (noisy or strided concentrations, a user's data set) needs rollout
    windows: raise ConfigError (one line) when the config would fit an exact dc/dt that is not there."""
    o = observation_params(cfg)
    recurrent = bool(cfg.get("recurrent_training")) and int(cfg.get("time_step", 1)) > 1
    if recurrent and cfg.simulation.get("network") == "sbml" and cfg.simulation.get("drive", True):
        raise ConfigError("recurrent_training: its rollouts do not follow driven boundary species; on "
                          "simulation.network=sbml fit the exact dc/dt (window=0) or rollout windows (loss=observed)")
    if not max_window(cfg) and (o.derivative_free or is_user_data(cfg.simulation)):
        why = (f"simulation.noise={o.noise}, simulation.stride={o.stride}" if o.derivative_free
               else "a user's data set (simulation.path)")
        raise ConfigError(f"window=0: with {why} the exact dc/dt is not observed; train on rollout windows "
                          "(loss=observed, or window >= 1)")


def batch_differences(a: DictConfig, b: DictConfig) -> list[str]:
    """The keys (dotted) in which two configurations differ beyond BATCHABLE_KEYS: empty if they can train
    together as one vectorised model."""
    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict):
            return {k: v for key, sub in d.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix[:-1]: d}

    skip = set(BATCHABLE_KEYS) | set(_RUN_KEYS)
    fa, fb = (flat({k: v for k, v in OmegaConf.to_container(c, resolve=True).items() if k not in skip and k != "hydra"})
              for c in (a, b))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def check_batchable(cfgs: list[DictConfig]) -> None:
    """Raise ConfigError (one line) unless every configuration differs from the first only in BATCHABLE_KEYS."""
    for i, c in enumerate(cfgs[1:], 1):
        diff = batch_differences(cfgs[0], c)
        if diff:
            raise ConfigError(f"batched: configuration {i} differs from the first in {', '.join(diff)}; only "
                              f"{', '.join(BATCHABLE_KEYS)} may differ within a batch")
