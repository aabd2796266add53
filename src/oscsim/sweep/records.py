"""A study's trials as the lab's experiment log: records, `<name>_analysis.md`, `<name>_ucb_scores.txt`.

Both files are rebuilt from the study on every write (atomically), so several workers sharing one study
always leave a complete log with each trial once."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import EXTRA_CONFIG_KEYS, LAB_CONFIG_KEYS
from .experiment_log import TrialRecord, render_log, render_ucb_scores, write_atomic
from .tree import Node, batch_of, block_of, puct_scores, slot_of

# The Config: line: the lab's keys in its order, then oscsim's other training keys (oscsim.config).
CONFIG_KEYS = LAB_CONFIG_KEYS + EXTRA_CONFIG_KEYS


def _status(t: FrozenTrial) -> str:
    if t.state in (TrialState.RUNNING, TrialState.WAITING):
        return "running"
    if t.state == TrialState.PRUNED:
        return "pruned"
    if t.state == TrialState.FAIL:
        return "failed"
    return str(t.user_attrs.get("metrics", {}).get("status", "partial"))


def _mutation_from_base(config: dict[str, Any], base: dict[str, Any]) -> str | None:
    moved = [f"{k}: {base[k]} -> {config[k]}" for k in config if k in base and config[k] != base[k]]
    return ", ".join(moved) or None


def trial_record(t: FrozenTrial, base: dict[str, Any], n_parallel: int, n_iter_block: int) -> TrialRecord:
    it = t.number + 1
    a = t.user_attrs
    config = dict(a.get("config") or {**base, **t.params})
    return TrialRecord(
        iter=it,
        parent=a.get("parent"),
        block=int(a.get("block") or block_of(it, n_iter_block)),
        batch=int(a.get("batch") or batch_of(it, n_parallel)),
        slot=int(a.get("slot") if a.get("slot") is not None else slot_of(it, n_parallel)),
        role=str(a.get("role") or "sampled"),
        strategy=str(a.get("strategy") or f"{a.get('sampler', 'sampler')} proposal"),
        config=config,
        mutation=a.get("mutation") if "mutation" in a else _mutation_from_base(config, base),
        parent_rule=str(a.get("parent_rule") or "root (not a tree sampler)"),
        status=_status(t),
        metrics=dict(a.get("metrics") or {}),
    )


def ucb_rows(records: list[TrialRecord], block: int, c: float) -> list[dict]:
    """PUCT rows over the finished nodes of one block, for `<name>_ucb_scores.txt`."""
    done = [r for r in records if r.block == block and r.status != "running"]
    ids = {r.iter for r in done}
    nodes = [Node(r.iter, r.parent if r.parent in ids else None, r.metrics.get("rate_constants_R2")
                  if r.status not in ("failed",) else None, block) for r in done]
    scores = puct_scores(nodes, c) if nodes else {}
    return [{"id": r.iter, "ucb": scores[r.iter].ucb, "parent": "root" if r.parent is None else r.parent,
             "visits": scores[r.iter].visits, "R2": r.metrics.get("rate_constants_R2"),
             "Pearson": r.metrics.get("test_pearson"), "mutation": r.mutation} for r in done]


def write_reports(study: optuna.Study, out_dir: Path, title: str, base: dict[str, Any], n_parallel: int,
                  n_iter_block: int, c: float, regime_lines: list[str] | None = None) -> tuple[Path, Path]:
    """Rebuild `<study>_analysis.md` and `<study>_ucb_scores.txt` in out_dir from the study."""
    trials = study.get_trials(deepcopy=False)
    records = [trial_record(t, base, n_parallel, n_iter_block) for t in trials if t.state != TrialState.WAITING]
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"{study.study_name}_analysis.md"
    ucb_path = out_dir / f"{study.study_name}_ucb_scores.txt"
    write_atomic(log_path, render_log(title, records, n_parallel, n_iter_block, regime_lines))
    finished = [r for r in records if r.status != "running"]
    block = max((r.block for r in finished), default=1)
    write_atomic(ucb_path, render_ucb_scores(ucb_rows(records, block, c), block=block, c=c))
    return log_path, ucb_path
