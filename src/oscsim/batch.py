"""Batched sweeps (`batched=true`): the sweeper groups the trials of a batch that differ only in per-model
scalars (config.BATCHABLE_KEYS) and hands each group to one job through a small JSON file that lists every
member's overrides and run directory; the job trains the group as one vectorised model. No torch here."""
from __future__ import annotations

import json
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from .config import BATCHABLE_KEYS

_PER_TRIAL = "sweep_trial."  # where each job reports: always the member's own


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _per_member(override: str) -> bool:
    key = _key(override)
    return key in BATCHABLE_KEYS or key.startswith(_PER_TRIAL)


def group_jobs(jobs: list[list[str]]) -> list[list[int]]:
    """Indices of the jobs that can train together, grouped in first-seen order: same overrides apart from
    BATCHABLE_KEYS' values (the same keys set) and their sweep_trial.* settings."""
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        shared = tuple(sorted(o for o in job if not _per_member(o)))
        keys = tuple(sorted(_key(o) for o in job if _per_member(o)))
        groups.setdefault((shared, keys), []).append(i)
    return list(groups.values())


def write_batch_file(path: Path, jobs: list[list[str]], dirs: list[Path]) -> None:
    """The members of one batched job: each one's per-member overrides and run directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    members = [{"overrides": [o for o in job if _per_member(o)], "dir": str(d)} for job, d in zip(jobs, dirs)]
    path.write_text(json.dumps({"members": members}, indent=2))


def member_configs(cfg: DictConfig) -> list[tuple[DictConfig, Path]]:
    """Each member of `cfg.batch_file`'s batch: the job's configuration with the member's overrides applied,
    and where its files go. A file that cannot be read stops the job with one line naming it."""
    path = Path(str(cfg.batch_file))
    try:
        members = json.loads(path.read_text())["members"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"batch_file={path}: not a batch file written by the sweeper ({e})") from None
    parser = OverridesParser.create()
    out = []
    for member in members:
        c = cfg.copy()
        for o in parser.parse_overrides(member["overrides"]):
            OmegaConf.update(c, o.key_or_group, o.value(), merge=False)
        c.batch_file = None
        out.append((c, Path(member["dir"])))
    return out
