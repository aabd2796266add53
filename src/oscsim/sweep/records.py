"""A study's trials as the lab's experiment log: records, `<name>_analysis.md`, `<name>_ucb_scores.txt`.

Both files are rebuilt from the study on every write (atomically), so several workers sharing one study
always leave a complete log with each trial once."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import EXTRA_CONFIG_KEYS, LAB_CONFIG_KEYS
from ..files import write_text
from .experiment_log import TrialRecord, render_log, render_ucb_scores
from .scores import block_scores, by_score, tree_nodes
from .tree import batch_of, block_of, slot_of

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
        # from the iteration alone (tree.py), whichever sampler ran: the UCB sampler's attrs say the same
        block=block_of(it, n_iter_block),
        batch=batch_of(it, n_parallel),
        slot=slot_of(it, n_parallel),
        role=str(a.get("role") or "sampled"),
        strategy=str(a.get("strategy") or f"{a.get('sampler', 'sampler')} proposal"),
        config=config,
        mutation=a.get("mutation") if "mutation" in a else _mutation_from_base(config, base),
        parent_rule=str(a.get("parent_rule") or "root (not a tree sampler)"),
        status=_status(t),
        metrics=dict(a.get("metrics") or {}),
    )


def ucb_rows(study: optuna.Study, trials: list[FrozenTrial], records: list[TrialRecord], n_iter_block: int,
             c: float) -> tuple[int, list[dict]]:
    """The latest block with a finished node and its rows for `<name>_ucb_scores.txt`, best first, scored
    exactly as the UCB sampler scores them (`scores`): R2 is the reward the tree used (as told, clipped).
    ``trials`` is the snapshot ``records`` were made from."""
    nodes = tree_nodes(study, n_iter_block, trials=trials)
    block = max((n.block for n in nodes), default=1)
    scores = block_scores(nodes, block, c)
    by_iter = {r.iter: r for r in records}
    rows = []
    for n in by_score([n for n in nodes if n.block == block], scores):
        rec = by_iter[n.iteration]
        rows.append({"id": n.iteration, "ucb": scores[n.iteration].ucb, "parent": "root" if n.parent is None else n.parent,
                     "visits": scores[n.iteration].visits, "R2": n.value, "Pearson": rec.metrics.get("test_pearson"),
                     "mutation": rec.mutation})
    return block, rows


def write_reports(study: optuna.Study, out_dir: Path, title: str, base: dict[str, Any], n_parallel: int,
                  n_iter_block: int, c: float, regime_lines: list[str] | None = None,
                  objective: str = "rate_constants_R2") -> tuple[Path, Path]:
    """Rebuild `<study>_analysis.md` and `<study>_ucb_scores.txt` in out_dir from the study."""
    trials = study.get_trials(deepcopy=False)
    records = [trial_record(t, base, n_parallel, n_iter_block) for t in trials if t.state != TrialState.WAITING]
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"{study.study_name}_analysis.md"
    ucb_path = out_dir / f"{study.study_name}_ucb_scores.txt"
    write_text(log_path, render_log(title, records, n_parallel, n_iter_block, regime_lines, objective))
    block, rows = ucb_rows(study, trials, records, n_iter_block, c)
    write_text(ucb_path, render_ucb_scores(rows, block=block, c=c))
    return log_path, ucb_path
