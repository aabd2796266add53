"""The Hydra side of oscsim's sweeper: turn `hydra.sweeper` settings and the command line into a
SweepRunner, and launch its batches with whatever Hydra launcher is configured."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, List

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from oscsim.sweep.settings import SweepSettings, default_storage, default_study_name

log = logging.getLogger(__name__)


def settings_from(cfg: DictConfig, sweep_dir: Path, extra_params: dict[str, Any] | None = None) -> SweepSettings:
    """SweepSettings from a composed config's `hydra.sweeper`, with defaults filled in."""
    s = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    s.pop("_target_", None)
    s["params"] = {**(s.get("params") or {}), **(extra_params or {})}
    s["study_name"] = s.get("study_name") or default_study_name(cfg.simulation.name, s["sampler"])
    s["storage"] = s.get("storage") or default_storage(sweep_dir)
    return SweepSettings(**s)


def base_config(cfg: DictConfig) -> dict[str, Any]:
    """The root configuration: every top-level scalar of the composed task config."""
    task = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    return {k: v for k, v in task.items() if not isinstance(v, (dict, list))}


def regime_lines(cfg: DictConfig) -> list[str]:
    from oscsim.config import simulation_params

    sim = simulation_params(cfg)
    return [
        "Regime: S frozen (from GT), learning rate constants k",
        f"- {sim.n_metabolites} metabolites, {sim.n_reactions} reactions, {sim.n_frames} frames",
        f"- log_k range: [{sim.log_k_min}, {sim.log_k_max}]",
        f"- Base config: lr_k={cfg.lr_k}, lr_node={cfg.lr_node}, lr_sub={cfg.lr_sub}, model={cfg.model.name}",
    ]


def build_runner(cfg: DictConfig, arguments: List[str], config_loader: Any = None):
    """A SweepRunner for a composed config and the command line's task overrides. Opening it checks
    everything a sweep needs (search space, sampler, storage reachable, a resumed study's fingerprint)."""
    from oscsim.config import simulation_params
    from oscsim.sweep.runner import SweepRunner

    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(arguments)
    fixed, extra = [], {}
    for o in parsed:
        if o.is_sweep_override():  # `lr_k=interval(...)` on the command line joins the search space
            extra[o.get_key_element()] = o.get_value_element_as_str()
        else:
            fixed.append(o.input_line)
    sweep_dir = Path(cfg.hydra.sweep.dir)
    settings = settings_from(cfg, sweep_dir, extra)
    if cfg.hydra.runtime.choices.get("sweep") == "ucb_primed" and not settings.ucb_prior:
        from oscsim.sweep.study import StudyError

        raise StudyError("hydra.sweeper.ucb_prior=[]: sweep=ucb_primed needs earlier studies: study:<name> (a study "
                         "in this storage), a study's JSON or a folder of them")
    return SweepRunner(settings, base_config(cfg), fixed, sweep_dir,
                       f"simulation_{cfg.simulation.name}", simulation_params(cfg).digest(), regime_lines(cfg))


def _exit_on_study_error(cfg: DictConfig, arguments: List[str], config_loader: Any = None):
    """build_runner, or one line `error: ...` and exit 2 when the study cannot be used as asked."""
    from oscsim.sweep.space import SearchSpaceError
    from oscsim.sweep.study import StudyError

    try:
        return build_runner(cfg, arguments, config_loader)
    except (StudyError, SearchSpaceError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def check_study(cfg: DictConfig, arguments: List[str]) -> None:
    """Open the sweep's study and close it again, so that a bad search space, sampler, storage URL or a study
    made under other settings stops with one line before any trial runs."""
    _exit_on_study_error(cfg, arguments).storage.remove_session()


def _outcomes(r: Any, n: int) -> list:
    """The Outcomes of one launched job that trained n trials (a batched job returns {"batch": [...]})."""
    from oscsim.sweep.runner import Outcome

    value = r._return_value if r.status == JobStatus.COMPLETED else None
    if isinstance(value, dict) and n > 1:
        value = value.get("batch")
    if n == 1 and isinstance(value, dict):
        return [Outcome(dict(value))]
    if isinstance(value, list) and len(value) == n and all(isinstance(v, dict) for v in value):
        return [Outcome(dict(v)) for v in value]
    err = r._return_value if r.status == JobStatus.FAILED else "job returned no metrics"
    return [Outcome(None, f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else str(err))] * n


def _subdir(template: str, number: int) -> str:
    """A trial's run directory under the sweep directory (hydra.sweep.subdir, e.g. iter_${sweep_trial.iter})."""
    return str(OmegaConf.create({"sweep_trial": {"number": number, "iter": number + 1},
                                 "hydra": {"job": {"num": number}}, "dir": template}).dir)


class OscsimOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        # Hydra passes hydra.sweeper's fields; sweep() reads them from the composed config (with the defaults)
        super().__init__()
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _launch(self, jobs: list[list[str]], numbers: list[int]):
        if not self.config.get("batched"):
            return [out for r in self.launcher.launch(jobs, initial_job_idx=numbers[0]) for out in _outcomes(r, 1)]
        return self._launch_batched(jobs, numbers)

    def _launch_batched(self, jobs: list[list[str]], numbers: list[int]):
        """`batched=true`: each group of trials that differ only in per-model scalars is one job (in the
        first member's run directory) training them as one vectorised model; the rest run one job each."""
        from oscsim.batch import group_jobs, write_batch_file

        groups = group_jobs(jobs)
        if any(len(g) == 1 for g in groups) and len(jobs) > 1:
            log.info("batched: trials %s differ from the others in more than per-model scalars (or are alone): "
                     "one job each", [numbers[g[0]] + 1 for g in groups if len(g) == 1])
        sweep_dir = Path(self.config.hydra.sweep.dir)
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)["subdir"]
        outcomes: list = [None] * len(jobs)
        for g in groups:
            job = jobs[g[0]]
            if len(g) > 1:
                dirs = [(sweep_dir / _subdir(subdir, numbers[i])).resolve() for i in g]
                path = sweep_dir / "batches" / f"trials_{numbers[g[0]] + 1}.json"
                write_batch_file(path, [jobs[i] for i in g], dirs)
                job = [*job, f"batch_file={path.resolve()}"]
                log.info("batched: trials %s train together in one job", [numbers[i] + 1 for i in g])
            (ret,) = self.launcher.launch([job], initial_job_idx=numbers[g[0]])
            for i, out in zip(g, _outcomes(ret, len(g))):
                outcomes[i] = out
        return outcomes

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        runner = _exit_on_study_error(self.config, arguments, self.hydra_context.config_loader)
        study = runner.run(self._launch)
        done = [t for t in study.get_trials(deepcopy=False) if t.values]
        best = [] if not done else study.best_trials if len(study.directions) > 1 else [study.best_trial]
        summary = [{"iter": t.number + 1, "values": t.values, "params": t.params} for t in best]
        (sweep_dir / "best.json").write_text(json.dumps(summary, indent=2))
        print(runner.summary_table())
        print(f"experiment log: {sweep_dir / (study.study_name + '_analysis.md')}")
        return summary
