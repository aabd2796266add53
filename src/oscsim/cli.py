"""The command line of `python -m oscsim.{simulate,train,oracle}`: compose the overrides, check every value
before Hydra starts any job, and end a bad one with exit 2 and one line `error: <key>=<value>: ...`."""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from omegaconf import DictConfig

from .config import CONF_DIR, check_training_data, validate
from .params import ConfigError


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
    if text.startswith("Error merging override ") and e.__cause__ is not None:  # a typed key got a wrong value
        return f"{text.removeprefix('Error merging override ')}: {str(e.__cause__).splitlines()[0]}"
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


def precheck(config_name: str, argv: list[str], extra_validate: Callable[[DictConfig], None] | None = None,
             checks: Sequence[Callable[[DictConfig], None]] = ()) -> None:
    """Compose the command line's overrides and check every value, then what the command needs from this
    machine (``checks``, oscsim.preflight), before Hydra starts any job; on a bad key or value print one line
    and exit 2."""
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
                for check in checks:
                    check(cfg)
    except ConfigError as e:
        _fail(str(e))
    except Exception as e:  # Hydra's parse / composition errors
        _fail(_one_line(e))


def command_checks(task: Callable[..., Any]) -> list[Callable[[DictConfig], None]]:
    """What a command needs from this machine, by the module that defines its task: every command reads (and
    may first simulate) the dataset; training also needs its device and the memory for its model."""
    from . import preflight as pf

    module = task.__module__
    if module == "__main__":  # `python -m oscsim.train`: the module's real name is on its spec
        module = getattr(sys.modules["__main__"].__spec__, "name", module)
    command = module.removesuffix(".__main__")
    if command == "oscsim.train":
        return [pf.check_data_dir, check_training_data, pf.check_device, pf.check_memory, pf.check_dataset]
    if command in ("oscsim.simulate", "oscsim.oracle"):
        return [pf.check_data_dir, pf.check_dataset]
    return []


def check_sweeper(argv: list[str]) -> Callable[[DictConfig], None] | None:
    """For a multirun with oscsim's sweeper: open its study now, so a bad search space, sampler, storage
    URL or a study made under other settings stops with one line before any trial runs."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return None
    task_args = [a for a in argv if not a.startswith(("-", "hydra.", "hydra/", "~hydra", "+hydra", "++hydra"))]

    def check(cfg: DictConfig) -> None:
        if not str(cfg.hydra.sweeper.get("_target_", "")).endswith("OscsimOptunaSweeper"):
            return
        from hydra_plugins.oscsim_sweeper.sweeper import check_study

        check_study(cfg, task_args)  # reports its own error line

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
            precheck(config_name, sys.argv[1:], check_sweeper(sys.argv[1:]), command_checks(task))
        return app()

    return main
