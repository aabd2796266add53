"""Hydra-facing helpers: where the configs live, value checks, and one-line errors before any work."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from .params import ConfigError, SimulationParams

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# The lab's `Config:` keys in the lab's order, then the other training keys a trial is defined by
# (TensorBoard's hparams and the experiment log's Config: line both list them).
LAB_CONFIG_KEYS = ("seed", "lr_k", "lr_node", "lr_sub", "batch_size", "n_epochs", "data_augmentation_loop",
                   "coeff_MLP_node_L1", "coeff_MLP_sub_norm", "coeff_k_floor")
EXTRA_CONFIG_KEYS = ("coeff_MLP_sub_diff", "k_floor_threshold", "time_step", "recurrent_training", "hidden_dim_sub",
                     "n_layers_sub", "hidden_dim_node", "n_layers_node", "lr_embedding")

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
    "lr_schedule": (lambda v: v in ("constant", "cosine"), "constant or cosine"),
    "k_floor_threshold": (lambda v: -10 <= v <= 10, "in [-10, 10]"),
    "threads": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "eval_every": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "rollout_frames": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "compile": (lambda v: v in (True, False, "auto"), "true, false or auto"),
    "rollout_dtype": (lambda v: v in ("float32", "float64"), "float32 or float64"),
    "seeds": (lambda v: v is None or (len(v) >= 1 and all(isinstance(x, int) and x >= 0 for x in v)),
              "null or a non-empty list of integers >= 0"),
}


def simulation_params(cfg: DictConfig) -> SimulationParams:
    return SimulationParams.from_mapping(OmegaConf.to_container(cfg.simulation, resolve=True))


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


def _one_line(e: Exception) -> str:
    """Hydra's composition errors span several lines; keep what names the key."""
    from hydra.errors import MissingConfigException

    if isinstance(e, MissingConfigException):
        opts = getattr(e, "options", None) or []
        name = str(getattr(e, "missing_cfg_file", "") or "")
        group, _, option = name.rpartition("/")
        if group:
            return f"{group}={option}: unknown option (allowed: {', '.join(sorted(opts))})"
    text = str(e).strip()
    if text.startswith("Could not override '"):
        key = text.split("'")[1]
        return f"{key}: unknown key (to list the keys: --cfg job)"
    if "Key '" in text and "is not in struct" in text:
        key = text.split("Key '")[1].split("'")[0]
        return f"{key}: unknown key (to list the keys: --cfg job)"
    return text.splitlines()[0]


def _expand(overrides: list[str]) -> list[list[str]]:
    """Override lists to check: every value of a comma sweep once, other sweeps left to the sweeper."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    base, sweeps = [], []
    for o in parsed:
        if not o.is_sweep_override():
            base.append(o.input_line)
        elif o.is_choice_sweep():
            values = list(o.sweep_string_iterator())
            base.append(f"{o.get_key_element()}={values[0]}")
            sweeps.append((len(base) - 1, o.get_key_element(), values[1:]))
    variants = [base]
    for i, key, values in sweeps:
        for v in values:
            variant = list(base)
            variant[i] = f"{key}={v}"
            variants.append(variant)
    return variants


def precheck(config_name: str, argv: list[str], extra_validate: Callable[[DictConfig], None] | None = None) -> None:
    """Compose the command line's overrides and check every value before Hydra starts any job; on a bad
    key or value print one line and exit 2."""
    from hydra import compose, initialize_config_dir

    overrides = [a for a in argv if not a.startswith("-")]
    try:
        variants = _expand(overrides)
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            for ov in variants:
                cfg = compose(config_name, overrides=ov, return_hydra_config=True)
                validate(cfg)
                if extra_validate:
                    extra_validate(cfg)
    except ConfigError as e:
        _fail(str(e))
    except Exception as e:  # Hydra's parse / composition errors
        _fail(_one_line(e))


def check_sweeper(argv: list[str]) -> Callable[[DictConfig], None] | None:
    """For a multirun with oscsim's sweeper: open its study now, so a bad search space, sampler, storage
    URL or a study made under other settings stops with one line before any trial runs."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return None
    task_args = [a for a in argv if not a.startswith(("-", "hydra.", "hydra/", "~hydra", "+hydra", "++hydra"))]

    def check(cfg: DictConfig) -> None:
        if not str(cfg.hydra.sweeper.get("_target_", "")).endswith("OscsimOptunaSweeper"):
            return
        from hydra_plugins.oscsim_sweeper.sweeper import build_runner

        runner = build_runner(cfg, task_args)
        runner.storage.remove_session()

    return check


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def hydra_entry(task: Callable[[DictConfig], Any], config_name: str = "config") -> Callable[[], Any]:
    """Wrap a task function as a Hydra app whose bad overrides fail fast with one line."""
    import hydra

    app = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)

    def main() -> Any:
        if not any(a in ("--help", "-h", "--hydra-help", "--info", "--cfg", "-c") or a.startswith("--info")
                   for a in sys.argv[1:]):
            precheck(config_name, sys.argv[1:], check_sweeper(sys.argv[1:]))
        return app()

    return main
