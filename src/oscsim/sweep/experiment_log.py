"""The lab's experiment log (`<name>_analysis.md`) and UCB score file, written and read back.

The whole log is rebuilt from the trial records each time (never appended to), so several workers can
rewrite it from the shared study without losing or duplicating entries. The format copies the lab's own
log line for line (SPEC §5) so that the lab's parser can still read what oscsim writes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .settings import objective_sign

# An MLP_sub exponent within this distance of the true power |s| counts as a learned power law.
EXPONENT_TOL = 0.1
# An MLP_node slope within this fraction of the true -lambda counts as learned homeostasis.
NODE_SLOPE_REL_TOL = 0.2
# Below this fraction of the true slope (in magnitude) the learned MLP_node is called flat.
NODE_FLAT_FRAC = 0.1
# Any slope smaller than this in magnitude is flat too (the true slopes are ~1e-3).
NODE_FLAT_ABS = 5e-4
# test_R2 below this (or non-finite) means the rollout diverged rather than merely fitted badly.
EXPLODED_TEST_R2 = -1.0

# The lab's Metrics line: key -> decimals (0 = integer), in the lab's order.
LAB_METRICS: dict[str, int] = {
    "rate_constants_R2": 4, "trimmed_R2": 4, "n_outliers": 0, "slope": 4,
    "test_R2": 2, "test_pearson": 4, "final_loss": 2, "alpha": 4,
}
# Ours, appended after the lab's keys (a parser looking for the lab's keys still finds them first).
EXTRA_METRICS: dict[str, int] = {
    "rate_constants_R2_identifiable": 4, "n_outliers_identifiable": 0, "rollout_horizon": 0,
    "embedding_cluster_acc": 4, "embedding_n_clusters": 0, "MLP_sub_R2": 4,
    "MLP_sub_exponent_1": 4, "MLP_sub_exponent_2": 4,
    "stoichiometry_R2": 4, "stoichiometry_exact": 4, "stoichiometry_exact_identifiable": 4, "heldout_loss": 5,
    "training_time_min": 2, "iterations_per_second": 2,
}
# Metric keys that are text/lists, never written on the Metrics line.
_NON_NUMERIC = {"MLP_sub_powers_in_data", "status", "error"}


@dataclass
class TrialRecord:
    """One node of the sweep tree, as the log shows it (node id == iter)."""

    iter: int
    parent: int | None
    block: int
    batch: int
    slot: int
    role: str
    strategy: str
    config: dict[str, Any]
    mutation: str | None
    parent_rule: str
    status: str  # 'converged' | 'partial' | 'failed' | 'pruned' | 'running'
    metrics: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- format
def _num(v: Any) -> float | None:
    """A metric as a float, or None when absent or not a number."""
    if v is None or isinstance(v, (bool, str, list, tuple, dict)):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _fmt(v: float, decimals: int) -> str:
    if not math.isfinite(v):
        return str(v)  # 'nan' / 'inf' / '-inf', which float() reads back
    if decimals == 0 and v.is_integer():
        return str(int(v))
    return f"{v:.{decimals or 4}f}"  # a non-integer 'count' (e.g. a horizon in time units) keeps its value


def _fmt_value(v: Any) -> str:
    # repr keeps floats exact (0.0005, 1e-05) so the config round-trips.
    return repr(v) if isinstance(v, float) else str(v)


def _node_types(metrics: dict[str, Any]) -> list[int]:
    return sorted(int(m.group(1)) for k in metrics if (m := re.fullmatch(r"MLP_node_slope_(\d+)", k)))


def _metric_keys(metrics: dict[str, Any]) -> list[tuple[str, int]]:
    """Keys to write, lab's first, then ours, then per-type MLP_node slopes, then anything else numeric."""
    keys = list(LAB_METRICS.items()) + list(EXTRA_METRICS.items())
    for t in _node_types(metrics):
        keys += [(f"MLP_node_slope_{t}", 4), (f"MLP_node_gt_slope_{t}", 4)]
    known = {k for k, _ in keys}
    keys += [(k, 4) for k in sorted(metrics) if k not in known and k not in _NON_NUMERIC]
    return [(k, d) for k, d in keys if _num(metrics.get(k)) is not None]


def format_metrics(metrics: dict[str, Any]) -> str:
    parts = [f"{k}={_fmt(_num(metrics[k]), d)}" for k, d in _metric_keys(metrics)]  # type: ignore[arg-type]
    return ", ".join(parts) if parts else "n/a"


def format_mutation(rec: TrialRecord) -> str:
    if rec.mutation:
        return rec.mutation
    return "None (baseline)" if rec.parent is None else "None"


# ----------------------------------------------------------------------------------------------- visual
def visual_text(metrics: dict[str, Any]) -> str:
    """MLP_sub / MLP_node verdicts MEASURED from fitted exponents and slopes (the lab eyeballed plots)."""
    return f"{_visual_sub(metrics)}, {_visual_node(metrics)}"


def _visual_sub(m: dict[str, Any]) -> str:
    e1, e2 = _num(m.get("MLP_sub_exponent_1")), _num(m.get("MLP_sub_exponent_2"))
    e1 = e1 if e1 is not None and math.isfinite(e1) else None
    e2 = e2 if e2 is not None and math.isfinite(e2) else None
    powers = m.get("MLP_sub_powers_in_data")
    if e1 is None and e2 is None:
        text = "MLP_sub=not measured"
    else:
        ok1 = e1 is None or abs(e1 - 1.0) <= EXPONENT_TOL
        ok2 = e2 is None or abs(e2 - 2.0) <= EXPONENT_TOL
        if ok1 and ok2:
            text = "MLP_sub=good: " + "; ".join(
                f"c^{p} grows like c^{e:.2f}" for p, e in ((1, e1), (2, e2)) if e is not None)
        else:
            bits = []
            if e1 is not None:
                bits.append(f"at |s|=1 grows like c^{e1:.2f}")
            if e2 is not None:
                # "linear" only where the curve really is about linear; flatter curves are just "not quadratic"
                lin = (" (linear instead of quadratic)" if 0.7 <= e2 < 1.5
                       else " (not quadratic)" if e2 < 0.7 else "")
                bits.append(f"at |s|=2 like c^{e2:.2f}{lin}" if e1 is not None
                            else f"at |s|=2 grows like c^{e2:.2f}{lin}")
            text = "MLP_sub=bad: " + "; ".join(bits)
    if powers is not None and 2 not in list(powers):
        # Why: without |s|=2 edges the loss never sees c^2, so a linear MLP_sub there is not a failure of training.
        text += "; the network has no |s|=2 edge, so c^2 is never constrained by the data"
    return text


def _visual_node(m: dict[str, Any]) -> str:
    pairs = [(t, _num(m.get(f"MLP_node_slope_{t}")), _num(m.get(f"MLP_node_gt_slope_{t}")))
             for t in _node_types(m)]
    pairs = [(t, s, g) for t, s, g in pairs if s is not None and g is not None and math.isfinite(s)]
    if not pairs:
        return "MLP_node=not measured"
    good = [abs(s - g) <= NODE_SLOPE_REL_TOL * abs(g) for _, s, g in pairs]
    flat = [abs(s) < max(NODE_FLAT_FRAC * abs(g), NODE_FLAT_ABS) for _, s, g in pairs]
    desc = ", ".join(f"{s:.3f} vs {'true ' if i == 0 else ''}{g:.3f} (type {t})"
                     for i, (t, s, g) in enumerate(pairs))
    if all(good):
        return f"MLP_node=good: slope {desc}"
    if all(f for f, ok in zip(flat, good) if not ok):
        why = "flat, no homeostasis learned"
    elif any(s * g < 0 for (_, s, g), ok in zip(pairs, good) if not ok):
        why = "wrong sign"
    else:
        why = "wrong strength"
    return f"MLP_node=bad: slope {desc}: {why}"


# ------------------------------------------------------------------------------------------ observation
_STATUS_NOTE = {
    "converged": "converged (rate_constants_R2 > 0.9)",
    "partial": "partial (rate_constants_R2 0.1-0.9)",
    "failed": "failed (rate_constants_R2 < 0.1)",
    "pruned": "pruned by the sampler before the end of training",
}


def observation_text(rec: TrialRecord, by_iter: dict[int, TrialRecord], objective: str = "rate_constants_R2") -> str:
    """The Observation line: the change in the sweep's objective (the tree's reward) against the parent."""
    m = rec.metrics
    parts: list[str] = []
    r2 = _num(m.get(objective))
    if rec.parent is None:
        parts.append(f"baseline of block {rec.block} (first batch, from root)" if not rec.mutation
                     else f"first batch of block {rec.block}: one move from the root config")
    elif (par := by_iter.get(rec.parent)) is None:
        parts.append(f"parent {rec.parent} not in the log")
    else:
        pr2 = _num(par.metrics.get(objective))
        if r2 is not None and pr2 is not None:
            parts.append(f"{objective} {pr2:.3f} -> {r2:.3f} ({r2 - pr2:+.3f}) vs parent {rec.parent}")
        else:
            parts.append(f"no {objective} to compare with parent {rec.parent}")
    ident = _num(m.get("rate_constants_R2_identifiable"))
    if ident is not None:
        parts.append(f"identifiable-reaction R2 {ident:.3f}")
    t = _num(m.get("test_R2"))
    if t is not None and (not math.isfinite(t) or t < EXPLODED_TEST_R2):
        parts.append(f"rollout exploded (test_R2={t:.1e})")
    if m.get("error"):
        parts.append(f"crashed: {' '.join(str(m['error']).split())}")  # one line, the parser reads lines
    else:
        parts.append(_STATUS_NOTE.get(rec.status, rec.status))
    return "; ".join(parts)


def _reward(rec: TrialRecord, objective: str = "rate_constants_R2") -> float | None:
    # as the UCB tree sees it (sweep.scores): a pruned or crashed trial has no result, whatever R2 it logged
    if rec.status in ("running", "pruned") or "error" in rec.metrics:
        return None
    r = _num(rec.metrics.get(objective))
    return objective_sign(objective) * r if r is not None and math.isfinite(r) else None


# ----------------------------------------------------------------------------------------------- render
def _dedupe(records: list[TrialRecord]) -> list[TrialRecord]:
    """One record per iter, chosen independently of input order (finished beats running, then more metrics)."""
    best: dict[int, TrialRecord] = {}
    for r in records:
        key = (r.status != "running", len(r.metrics), repr(r))
        if r.iter not in best or key > (best[r.iter].status != "running", len(best[r.iter].metrics),
                                        repr(best[r.iter])):
            best[r.iter] = r
    return [best[i] for i in sorted(best)]


def _iter_entry(rec: TrialRecord, by_iter: dict[int, TrialRecord], next_parent: int | None,
                objective: str = "rate_constants_R2") -> list[str]:
    return [
        f"## Iter {rec.iter}: {rec.status}",
        f"Node: id={rec.iter}, parent={'root' if rec.parent is None else rec.parent}",
        # the UCB sampler's strategy already leads with the role ("explore (lr_k high)")
        f"Mode/Strategy: {rec.strategy if rec.strategy.startswith(rec.role) else f'{rec.role} ({rec.strategy})'}",
        "Config: " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in rec.config.items()),
        f"Metrics: {format_metrics(rec.metrics)}",
        f"Visual: {visual_text(rec.metrics)}",
        f"Mutation: {format_mutation(rec)}",
        f"Parent rule: {rec.parent_rule}",
        f"Observation: {observation_text(rec, by_iter, objective)}",
        f"Next: parent={'root' if next_parent is None else next_parent}",
        "",
    ]


def _summary(batch: int, recs: list[TrialRecord]) -> list[str]:
    def cell(r: TrialRecord, k: str, d: int) -> str:
        v = _num(r.metrics.get(k))
        return "-" if v is None else _fmt(v, d)

    out = [f"### Batch {batch} Summary", "",
           "| Slot | Iter | Mutation | R² | outliers | alpha | slope | status |",
           "|---|---|---|---|---|---|---|---|"]
    for r in recs:
        out.append(f"| {r.slot} | {r.iter} | {format_mutation(r).replace('|', '/')} | "
                   f"{cell(r, 'rate_constants_R2', 4)} | {cell(r, 'n_outliers', 0)} | "
                   f"{cell(r, 'alpha', 4)} | {cell(r, 'slope', 4)} | {r.status} |")
    return out + [""]


def render_log(title: str, records: list[TrialRecord], n_parallel: int, n_iter_block: int,
               regime_lines: list[str] | None = None, objective: str = "rate_constants_R2") -> str:
    """The whole log, rebuilt from the records (deterministic: same records -> same text, any order).
    `objective`: the metric the tree rewards (the sweep's first objective): it picks each block's best."""
    recs = _dedupe(records)
    by_iter = {r.iter: r for r in recs}
    batches: dict[int, list[TrialRecord]] = {}
    for r in recs:
        batches.setdefault(r.batch, []).append(r)
    order = sorted(batches, key=lambda b: min(r.iter for r in batches[b]))
    out = [f"# Experiment Log: {title} (parallel)", ""]
    best: dict[int, TrialRecord] = {}  # block -> best-reward record so far (drives 'Next: parent=')
    seen_blocks: set[int] = set()
    for bi, b in enumerate(order):
        brecs = sorted(batches[b], key=lambda r: (r.slot, r.iter))
        block = brecs[0].block
        first_of_block = block not in seen_blocks
        if first_of_block:
            seen_blocks.add(block)
            a = (block - 1) * n_iter_block + 1
            name = "Initial Exploration" if not out[2:] else f"Exploration (Iter {a}-{a + n_iter_block - 1})"
            out += [f"## Block {block}: {name}", ""]
        lo, hi = min(r.iter for r in brecs), max(r.iter for r in brecs)
        heading = ("PARALLEL START - Initial Spread" if first_of_block
                   else "UCB-guided (" + ", ".join(r.role for r in brecs) + ")")
        out += [f"### Batch {b} (Iter {lo}-{hi}): {heading}", ""]
        if bi == 0 and regime_lines:
            out += list(regime_lines) + [""]
        if first_of_block:
            out += ["Planned initial variations:", ""]
        for r in brecs:
            out += [f"**Slot {r.slot} (id={r.iter})**: {r.strategy}",
                    "- Config: " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in r.config.items()),
                    f"- Mutation: {format_mutation(r)}",
                    f"- Parent rule: {r.parent_rule}", ""]
        out += ["---", ""]
        for r in sorted(brecs, key=lambda r: r.iter):
            if r.status == "running":
                continue  # planned only; its entry is written once it finishes
            rw = _reward(r, objective)
            if rw is not None and (block not in best or rw > _reward(best[block], objective)):  # type: ignore[operator]
                best[block] = r
            out += _iter_entry(r, by_iter, best[block].iter if block in best else None, objective)
        later = bi < len(order) - 1
        if all(r.status != "running" for r in brecs) and (len(brecs) >= n_parallel or later):
            out += ["---", ""] + _summary(b, brecs)
    return "\n".join(out).rstrip("\n") + "\n"


def render_ucb_scores(rows: list[dict], block: int | None = None, c: float = 1.414) -> str:
    """The lab's `<name>_ucb_scores.txt`: one `Node N: UCB=...` line per node, best first.

    A header is written only when `block` is given; it does not start with `Node `, so the lab's parser
    (which reads only `Node ` lines) skips it.
    """
    def f3(v: Any) -> str:
        x = _num(v)
        return "nan" if x is None else f"{x:.3f}"

    lines = [f"# UCB scores: block {block} (c={c}, N_total={len(rows)})"] if block is not None else []
    for r in sorted(rows, key=lambda r: (-float(r["ucb"]), int(r["id"]))):
        lines.append(f"Node {int(r['id'])}: UCB={f3(r['ucb'])}, parent={r['parent']}, visits={int(r['visits'])}, "
                     f"R2={f3(r['R2'])}, Pearson={f3(r.get('Pearson'))}, Mutation={r.get('mutation') or 'None'}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ parse
_ITER_RE = re.compile(r"^## Iter (\d+):\s*(\S*)")
_NODE_RE = re.compile(r"^Node: id=(\d+), parent=(root|\d+)")
_NEXT_RE = re.compile(r"^Next: parent=(root|\d+)")
_KV_RE = re.compile(r"(\w+)=([^,]*)")
_UCB_RE = re.compile(r"^Node (\d+): UCB=(\S+), parent=(root|\d+), visits=(\d+), R2=(\S+), "
                     r"Pearson=(\S+), Mutation=(.*)$")


def _typed(s: str) -> Any:
    s = s.strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    if s in ("True", "False"):
        return s == "True"
    try:
        return float(s)
    except ValueError:
        return s


def _parent(s: str) -> int | None:
    return None if s == "root" else int(s)


def _mutation(s: str) -> str | None:
    s = s.strip()
    return None if s == "None" or s.startswith("None (") else s


def parse_log(text: str) -> list[dict]:
    """Per `## Iter N:` entry: iter, status, id, parent, config, metrics (floats), mutation, next_parent, ..."""
    out: list[dict] = []
    cur: dict | None = None
    for line in text.splitlines():
        line = line.rstrip()
        if m := _ITER_RE.match(line):
            cur = {"iter": int(m.group(1)), "status": m.group(2), "id": None, "parent": None, "config": {},
                   "metrics": {}, "mutation": None, "next_parent": None, "strategy": None, "visual": None,
                   "parent_rule": None, "observation": None}
            out.append(cur)
            continue
        if cur is None:
            continue
        if line.startswith("#") or line.startswith("---"):
            cur = None  # entry ended; plan lines ('- Config:') never start an entry
        elif m := _NODE_RE.match(line):
            cur["id"], cur["parent"] = int(m.group(1)), _parent(m.group(2))
        elif line.startswith("Config:"):
            cur["config"] = {k: _typed(v) for k, v in _KV_RE.findall(line[len("Config:"):])}
        elif line.startswith("Metrics:"):
            for k, v in _KV_RE.findall(line[len("Metrics:"):]):
                try:
                    cur["metrics"][k] = float(v)
                except ValueError:
                    pass
        elif line.startswith("Mutation:"):
            cur["mutation"] = _mutation(line[len("Mutation:"):])
        elif m := _NEXT_RE.match(line):
            cur["next_parent"] = _parent(m.group(1))
        else:
            for key, prefix in (("strategy", "Mode/Strategy:"), ("visual", "Visual:"),
                                ("parent_rule", "Parent rule:"), ("observation", "Observation:")):
                if line.startswith(prefix):
                    cur[key] = line[len(prefix):].strip()
    return out


def parse_ucb_scores(text: str) -> list[dict]:
    """`Node N: UCB=...` lines back to rows (Pearson None for nan, mutation None for 'None')."""
    rows = []
    for line in text.splitlines():
        if m := _UCB_RE.match(line.rstrip()):
            pearson = float(m.group(6))
            rows.append({"id": int(m.group(1)), "ucb": float(m.group(2)),
                         "parent": "root" if m.group(3) == "root" else int(m.group(3)),
                         "visits": int(m.group(4)), "R2": float(m.group(5)),
                         "Pearson": None if math.isnan(pearson) else pearson,
                         "mutation": _mutation(m.group(7))})
    return rows
