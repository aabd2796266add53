"""An Optuna sampler that runs the lab's PUCT tree search (SPEC §5).

Every trial is a node: a copy of its parent's configuration with exactly one parameter moved.
Trials are asked ``n_parallel`` at a time (one batch) before any of them is told, so the plan of a
batch is a pure function of

    (seed, the finished trials numbered before the batch, slot)

It never depends on sampler state: a new sampler instance on the same storage (a restarted sweep)
makes the same plan, and every trial of a batch sees the same inputs. Randomness (only used to
break ties) comes from a numpy Generator seeded with ``(seed, trial.number)``.

Step rules (``_step``), direction +1 = "high", -1 = "low":

* log float: x2 up, /2.5 down (0.005 -> 0.01, 0.0005 -> 0.0002, as the lab did); the conservative
  step of the exploit slot is x1.5 / /1.5. Results are rounded to 3 significant digits (keeps
  values readable, e.g. 0.0002 rather than 0.00019999999999999998), then clipped to [low, high].
* linear float: +-10 % of (high - low) (conservative: 5 %), at least one ``step`` and snapped to
  the step grid when the distribution has one; clipped.
* int: +-step; log int: x2 / /2 (conservative x1.5 / /1.5), always at least +-1; clipped.
* categorical: numeric choices move to the adjacent value in sorted order; other choices (bool,
  str) move to the adjacent choice in the declared order (with two choices: the other value).
* boundary-probe: the parameter jumps to low/high (first/last choice).

A move that changes nothing (parameter at its bound) or that would recreate a configuration
already in the block is skipped for the next candidate (other direction, other parameter, other
parent).

Move learning (``move_stats``): for every finished trial whose reward and reference reward are
known, the reward change (improvement, i.e. sign-corrected for a minimised objective) is recorded
under (param, direction). The reference is the parent's reward; for children of the block's root
(parent None) it is the block's baseline trial (first iteration of the block, root config
unchanged) -- otherwise the whole initial spread would teach nothing. Moves are ranked by
``mean + c*sqrt(ln(total)/n)``, unseen moves first.

Roles cycle with the iteration, ``(iteration-1) % 4``: exploit, exploit, explore, probe (for
n_parallel=4 this is exactly the slot). "probe" is principle-test on even batches of a block and
boundary-probe on odd ones, each falling back to the other when it has no candidate.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from .scores import PLAN_KEY, Move, TreeNode, block_scores, tree_nodes
from .tree import NodeScore, batch_of, block_of, slot_of

_ROLE_CYCLE = ("exploit", "exploit", "explore", "probe")
_LOG_UP, _LOG_DOWN, _LOG_SMALL = 2.0, 2.5, 1.5
_LIN_FRAC, _LIN_SMALL_FRAC = 0.10, 0.05



# --------------------------------------------------------------------------- value helpers


def _round_sig(v: float, digits: int) -> float:
    return float(f"{v:.{digits}g}")


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _canon(dist: BaseDistribution, value: Any) -> Any:
    """Plain JSON-able Python value of the distribution's type (1 and 1.0 must compare equal)."""
    if isinstance(dist, FloatDistribution):
        return float(value)
    if isinstance(dist, IntDistribution):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _cat_order(dist: CategoricalDistribution) -> list[Any]:
    choices = list(dist.choices)
    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
    return sorted(choices) if numeric else choices


def _movable(dist: BaseDistribution) -> bool:
    return not dist.single()


def _step(dist: BaseDistribution, value: Any, direction: int, kind: str) -> Any | None:
    """The parameter value after one move; None when the move changes nothing.

    kind: "step" (normal), "small" (conservative exploit step) or "bound" (jump to a bound).
    """
    if isinstance(dist, CategoricalDistribution):
        order = _cat_order(dist)
        if value not in order:
            return None
        if kind == "bound":
            new = order[-1] if direction > 0 else order[0]
        else:
            i = order.index(value) + direction
            if not 0 <= i < len(order):
                return None
            new = order[i]
    elif kind == "bound":
        new = dist.high if direction > 0 else dist.low
    elif isinstance(dist, FloatDistribution):
        if dist.log:
            f = _LOG_SMALL if kind == "small" else (_LOG_UP if direction > 0 else _LOG_DOWN)
            new = _round_sig(value * f if direction > 0 else value / f, 3)
        else:
            delta = (_LIN_SMALL_FRAC if kind == "small" else _LIN_FRAC) * (dist.high - dist.low)
            if dist.step is not None:
                delta = max(1, round(delta / dist.step)) * dist.step
            new = value + direction * delta
            if dist.step is not None:
                new = dist.low + round((new - dist.low) / dist.step) * dist.step
            new = _round_sig(new, 12)
        new = min(max(new, dist.low), dist.high)
    elif isinstance(dist, IntDistribution):
        if dist.log:
            f = _LOG_SMALL if kind == "small" else 2.0
            if direction > 0:
                new = max(value + 1, round(value * f))
            else:
                new = min(value - 1, round(value / f))
        else:
            new = value + direction * dist.step
        new = min(max(int(new), dist.low), dist.high)
    else:  # pragma: no cover - Optuna has no other distribution types
        return None
    new = _canon(dist, new)
    if new == value or not _contains(dist, new):
        return None
    return new


def _draw(dist: BaseDistribution, rng: np.random.Generator) -> Any:
    """A uniform (log-uniform for log distributions) draw inside the distribution."""
    if isinstance(dist, CategoricalDistribution):
        return _canon(dist, dist.choices[int(rng.integers(len(dist.choices)))])
    if isinstance(dist, FloatDistribution):
        if dist.log:
            v = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
        elif dist.step is not None:
            n = int(round((dist.high - dist.low) / dist.step))
            v = dist.low + int(rng.integers(n + 1)) * dist.step
        else:
            v = rng.uniform(dist.low, dist.high)
        return float(min(max(v, dist.low), dist.high))
    if isinstance(dist, IntDistribution):
        if dist.log:
            v = int(round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))))
        else:
            v = dist.low + int(rng.integers((dist.high - dist.low) // dist.step + 1)) * dist.step
        return int(min(max(v, dist.low), dist.high))
    raise TypeError(f"unsupported distribution {dist!r}")


def _fmt(v: Any) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)


def _key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


# --------------------------------------------------------------------------- records


@dataclass
class _Rec:
    """What the planner knows about one finished trial."""

    iteration: int
    block: int
    config: dict[str, Any]
    parent: int | None
    move: Move | None
    reward: float | None  # sign-corrected (larger is better); None = failed/pruned
    raw: float | None  # the objective value as reported
    trial: FrozenTrial


@dataclass
class _Plan:
    config: dict[str, Any]
    parent: int | None
    move: Move | None
    role: str
    strategy: str
    mutation: str | None
    parent_rule: str

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "parent": self.parent,
            "move": list(self.move) if self.move else None,
            "role": self.role,
            "strategy": self.strategy,
            "mutation": self.mutation,
            "parent_rule": self.parent_rule,
        }


@dataclass
class _Cand:
    """A candidate child: parent config + one move."""

    parent: int | None
    parent_config: dict[str, Any]
    move: Move
    kind: str  # "step" | "small" | "bound"
    role: str
    strategy: Callable[[Move], str]
    parent_rule: str


@dataclass
class _BatchState:
    taken: set[str] = field(default_factory=set)  # configs already in the block or this batch
    used: set[tuple[int | None, str]] = field(default_factory=set)  # (parent, param) this batch
    moved_params: set[str] = field(default_factory=set)  # params moved in this block so far


# --------------------------------------------------------------------------- sampler


class UCBTreeSampler(BaseSampler):
    """PUCT tree search over one-parameter mutations, batch-parallel and restart-safe."""

    def __init__(
        self,
        search_space: dict[str, BaseDistribution],
        base_params: dict[str, Any],
        *,
        n_parallel: int = 4,
        n_iter_block: int = 12,
        ucb_c: float = 1.414,
        objective_index: int = 0,
        seed: int | None = None,
        first_batch_params: list[str] | None = None,
    ) -> None:
        if n_parallel < 1:
            raise ValueError("n_parallel must be >= 1")
        if n_iter_block < 1 or n_iter_block % n_parallel:
            # a batch must never straddle two blocks (two roots in one batch)
            raise ValueError("n_iter_block must be a positive multiple of n_parallel")
        if not search_space:
            raise ValueError("empty search space")
        self._space = dict(search_space)
        self._base = dict(base_params)
        self._n_parallel = n_parallel
        self._n_iter_block = n_iter_block
        self._c = float(ucb_c)
        self._objective_index = objective_index
        # seed=None: a fresh random seed; runs are then reproducible only within this instance
        self._seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        self._seed %= 2**63
        if first_batch_params is None:
            first_batch_params = list(self._space)[: max(n_parallel - 1, 1)]
        unknown = [p for p in first_batch_params if p not in self._space]
        if unknown:
            raise ValueError(f"first_batch_params not in the search space: {unknown}")
        self._first_params = list(first_batch_params)
        self._root1 = {k: self._base_value(k, d) for k, d in self._space.items()}

    # ---------------------------------------------------------------- Optuna interface

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # planning at ask() time: attributes exist even if the objective never suggests
        self._ensure_plan(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        plan = self._ensure_plan(study, trial)
        return {k: v for k, v in plan["config"].items() if k in search_space}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name in self._base and _contains(param_distribution, self._base[param_name]):
            return _canon(param_distribution, self._base[param_name])
        return _draw(param_distribution, self._rng(trial.number, param_name))

    # ---------------------------------------------------------------- public helpers

    @property
    def seed(self) -> int:
        return self._seed

    def move_stats(self, study: Study) -> dict[Move, tuple[float, int]]:
        """Mean reward change and count per (param, direction) over all finished trials."""
        return self._move_stats(self._records(study, before=None))

    # ---------------------------------------------------------------- internals: data

    def _rng(self, number: int, salt: str = "") -> np.random.Generator:
        words = [self._seed, number] + ([zlib.crc32(salt.encode())] if salt else [])
        return np.random.default_rng(words)

    def _base_value(self, name: str, dist: BaseDistribution) -> Any:
        if name in self._base and _contains(dist, self._base[name]):
            return _canon(dist, self._base[name])
        # missing / invalid base value: a fixed draw, so the root is the same in every process
        return _draw(dist, self._rng(0, "root:" + name))

    def _records(self, study: Study, before: int | None) -> list[_Rec]:
        """Finished trials (numbered below ``before``) as planner records, by iteration."""
        out = []
        for n in tree_nodes(study, self._n_iter_block, self._objective_index, before):
            plan = n.trial.system_attrs.get(PLAN_KEY)
            config = dict(plan["config"]) if plan else dict(self._root1)
            # params actually used win over the plan (enqueued / fixed params)
            config.update(
                {k: _canon(self._space[k], v) for k, v in n.trial.params.items() if k in self._space}
            )
            out.append(
                _Rec(
                    iteration=n.iteration,
                    block=n.block,
                    config=config,
                    parent=n.parent,
                    move=n.move,
                    reward=n.reward,
                    raw=n.value,
                    trial=n.trial,
                )
            )
        return out

    def _scores(self, block_recs: list[_Rec]) -> dict[int, NodeScore]:
        nodes = [
            TreeNode(r.iteration, r.block, r.parent, r.move, r.raw, r.reward, r.trial)
            for r in block_recs
        ]
        return block_scores(nodes, block_recs[0].block, self._c) if nodes else {}

    def _move_stats(self, recs: list[_Rec]) -> dict[Move, tuple[float, int]]:
        by_it = {r.iteration: r for r in recs}
        acc: dict[Move, list[float]] = {}
        for r in recs:
            if r.move is None or r.reward is None:
                continue
            if r.parent is not None:
                ref = by_it.get(r.parent)
            else:  # child of the root: compare with the block's baseline run of the root
                ref = by_it.get((r.block - 1) * self._n_iter_block + 1)
                if ref is not None and (ref.parent is not None or ref.move is not None):
                    ref = None
            if ref is None or ref.reward is None:
                continue
            acc.setdefault(r.move, []).append(r.reward - ref.reward)
        return {m: (float(np.mean(d)), len(d)) for m, d in acc.items()}

    # ---------------------------------------------------------------- internals: planning

    def _ensure_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        storage = study._storage
        stored = storage.get_trial_system_attrs(trial._trial_id).get(PLAN_KEY)
        if stored is not None:
            return stored
        it = trial.number + 1
        slot = slot_of(it, self._n_parallel)
        plan = self._plan_batch(study, trial.number - slot, slot)
        data = plan.as_json()
        storage.set_trial_system_attr(trial._trial_id, PLAN_KEY, data)
        attrs = {
            "parent": plan.parent,
            "slot": slot,
            "role": plan.role,
            "strategy": plan.strategy,
            "mutation": plan.mutation,
            "parent_rule": plan.parent_rule,
            "block": block_of(it, self._n_iter_block),
            "batch": batch_of(it, self._n_parallel),
            "iter": it,
        }
        for k, v in attrs.items():
            storage.set_trial_user_attr(trial._trial_id, k, v)
        return data

    def _moves(self) -> list[Move]:
        return [(p, d) for p, dist in self._space.items() if _movable(dist) for d in (1, -1)]

    def _rank_ucb(
        self, stats: dict[Move, tuple[float, int]], rng: np.random.Generator
    ) -> list[Move]:
        """Moves by mean + c*sqrt(ln(total)/n); unseen moves first, ties broken by ``rng``."""
        total = sum(n for _, n in stats.values())
        moves = self._moves()
        tie = rng.random(len(moves))

        def score(m: Move) -> float:
            if m not in stats:
                return math.inf
            mean, n = stats[m]
            return mean + self._c * math.sqrt(math.log(total) / n) if total > 1 else mean

        order = sorted(range(len(moves)), key=lambda i: (-score(moves[i]), tie[i]))
        return [moves[i] for i in order]

    def _rank_paying(
        self, stats: dict[Move, tuple[float, int]], rng: np.random.Generator
    ) -> list[Move]:
        """Seen moves by mean gain (the exploit choice), then the UCB order for the rest."""
        ucb = self._rank_ucb(stats, rng)
        # sorted() is stable: equal means keep their UCB order
        seen = sorted((m for m in ucb if m in stats), key=lambda m: -stats[m][0])
        return seen + [m for m in ucb if m not in stats]

    def _plan_batch(self, study: Study, start: int, slot: int) -> _Plan:
        """Plan of ``slot`` in the batch whose first trial number is ``start``: the slots before it
        are planned too (same inputs, same result) so slots never duplicate each other."""
        recs = self._records(study, before=start)
        it0 = start + 1
        block = block_of(it0, self._n_iter_block)
        block_start = (block - 1) * self._n_iter_block + 1
        batch_in_block = (it0 - block_start) // self._n_parallel + 1
        block_recs = [r for r in recs if r.block == block]
        root, root_rule = self._block_root(block, [r for r in recs if r.iteration < block_start])
        stats = self._move_stats(recs)
        state = _BatchState()
        state.taken = {_key(r.config) for r in block_recs}
        state.moved_params = {r.move[0] for r in block_recs if r.move}

        plans: list[_Plan] = []
        counts = {"exploit": 0, "explore": 0, "probe": 0}
        for s in range(slot + 1):
            it = it0 + s
            rng = self._rng(it - 1)
            role = _ROLE_CYCLE[(it - 1) % len(_ROLE_CYCLE)]
            k = counts[role]
            counts[role] += 1
            if batch_in_block == 1:
                plan = self._first_batch_slot(s, role, root, root_rule, block, stats, rng, state)
            else:
                plan = self._later_slot(
                    role, k, batch_in_block, block_recs, root, stats, rng, state
                )
            state.taken.add(_key(plan.config))
            if plan.move:
                state.used.add((plan.parent, plan.move[0]))
                state.moved_params.add(plan.move[0])
            plans.append(plan)
        return plans[slot]

    def _block_root(self, block: int, earlier: list[_Rec]) -> tuple[dict[str, Any], str]:
        if block == 1:
            return dict(self._root1), "root (initial batch)"
        done = [r for r in earlier if r.reward is not None]
        if not done:  # nothing ever completed: restart from the base configuration
            return dict(self._root1), f"root (block {block}: base config, no completed node)"
        best = max(done, key=lambda r: (r.reward, -r.iteration))
        rule = f"root (block {block}: best so far = Node {best.iteration}, R2={best.raw:.4g})"
        return dict(best.config), rule

    def _make(self, cand: _Cand) -> _Plan | None:
        p, d = cand.move
        new = _step(self._space[p], cand.parent_config.get(p), d, cand.kind)
        if new is None:
            return None
        config = dict(cand.parent_config)
        old = config[p]
        config[p] = new
        return _Plan(
            config=config,
            parent=cand.parent,
            move=cand.move,
            role=cand.role,
            strategy=cand.strategy(cand.move),
            mutation=f"{p}: {_fmt(old)} -> {_fmt(new)}",
            parent_rule=cand.parent_rule,
        )

    def _choose(self, passes: Iterable[Iterable[_Cand]], state: _BatchState) -> _Plan | None:
        """First candidate that changes something, is new in the block and does not repeat a
        (parent, param) of this batch; then relax the last two conditions in turn."""
        passes = [list(p) for p in passes]
        for strict in (2, 1, 0):
            for cands in passes:
                for c in cands:
                    if strict == 2 and (c.parent, c.move[0]) in state.used:
                        continue
                    plan = self._make(c)
                    if plan is None or (strict >= 1 and _key(plan.config) in state.taken):
                        continue
                    return plan
        return None

    def _small(self, param: str) -> str:
        # categorical moves have no smaller step; only say "small step" when there is one
        return "" if isinstance(self._space[param], CategoricalDistribution) else ", small step"

    @staticmethod
    def _word(d: int) -> str:
        return "high" if d > 0 else "low"

    def _first_batch_slot(
        self,
        s: int,
        role: str,
        root: dict[str, Any],
        root_rule: str,
        block: int,
        stats: dict[Move, tuple[float, int]],
        rng: np.random.Generator,
        state: _BatchState,
    ) -> _Plan:
        if s == 0:
            return _Plan(dict(root), None, None, "exploit", "exploit (baseline)", None, root_rule)

        def strat(m: Move) -> str:
            return f"explore ({m[0]} {self._word(m[1])})"

        def cands(moves: Iterable[Move]) -> list[_Cand]:
            return [_Cand(None, root, m, "step", "explore", strat, root_rule) for m in moves]

        ranked = self._rank_ucb(stats, rng)
        if block == 1:
            # one-at-a-time spread over first_batch_params: up, except the slot whose role is the
            # contrarian "probe" which goes down (seed Batch 1: lr_k up, lr_node up, lr_sub down)
            p = self._first_params[(s - 1) % len(self._first_params)]
            d = -1 if role == "probe" else 1
            first = cands([(p, d), (p, -d)])
        else:
            first = []
        plan = self._choose([first, cands(ranked)], state)
        if plan is None:  # every parameter is fixed: nothing to move
            plan = _Plan(dict(root), None, None, "explore", "explore (no move possible)", None, root_rule)
        return plan

    def _later_slot(
        self,
        role: str,
        k: int,
        batch_in_block: int,
        block_recs: list[_Rec],
        root: dict[str, Any],
        stats: dict[Move, tuple[float, int]],
        rng: np.random.Generator,
        state: _BatchState,
    ) -> _Plan:
        """Plan of a slot after the block's first batch; ``k`` counts the earlier slots of the
        same role in this batch (2nd exploit slot -> 2nd-highest UCB node, ...)."""
        scores = self._scores(block_recs)
        alive = [r for r in block_recs if r.reward is not None]  # failed configs are not parents
        by_ucb = sorted(alive, key=lambda r: (-scores[r.iteration].ucb, r.iteration))
        ucb_moves = self._rank_ucb(stats, rng)
        w = self._word

        def cands(
            r: _Rec | None, moves: Iterable[Move], kind: str, role_: str,
            strat: Callable[[Move], str], rule: str,
        ) -> Iterator[_Cand]:
            cfg = root if r is None else r.config
            for m in moves:
                yield _Cand(None if r is None else r.iteration, cfg, m, kind, role_, strat, rule)

        def ucb_rule(r: _Rec, rank: int) -> str:
            what = "highest UCB" if rank == 0 else f"UCB rank {rank + 1}"
            return f"Node {r.iteration}: {what} {scores[r.iteration].ucb:.3f}"

        def explore_text(m: Move) -> str:
            return f"explore ({m[0]} {w(m[1])})"

        # last resort for every role: any node by UCB (or the block root when none completed)
        fb_role = "explore" if role == "probe" else role
        if alive:
            fallback = [
                cands(r, ucb_moves, "step", fb_role, explore_text, ucb_rule(r, i))
                for i, r in enumerate(by_ucb)
            ]
        else:
            fallback = [cands(None, ucb_moves, "step", "explore", explore_text,
                              "root (no completed node in block)")]

        passes: list[Iterable[_Cand]] = []
        if alive and role == "exploit":
            if k == 0:  # the most-paying move, conservative step, on the top node
                top = by_ucb[0]
                passes.append(cands(
                    top, self._rank_paying(stats, rng), "small", "exploit",
                    lambda m: f"exploit ({m[0]} {w(m[1])}{self._small(m[0])})", ucb_rule(top, 0),
                ))
            else:  # the k-th node by UCB, or (too few nodes) the top node with another param
                i = min(k, len(by_ucb) - 1)
                r = by_ucb[i]
                passes.append(cands(r, ucb_moves, "step", "exploit",
                                    lambda m: f"exploit ({m[0]} {w(m[1])})", ucb_rule(r, i)))
        elif alive and role == "explore":  # least-visited node, a dimension not yet moved
            def visits_key(r: _Rec) -> tuple[int, float, int]:
                return (scores[r.iteration].visits, -scores[r.iteration].ucb, r.iteration)

            r = sorted(alive, key=visits_key)[min(k, len(alive) - 1)]
            rule = f"Node {r.iteration}: fewest visits ({scores[r.iteration].visits})"
            fresh = [m for m in ucb_moves if m[0] not in state.moved_params]
            passes.append(cands(r, fresh, "step", "explore",
                                lambda m: f"explore ({m[0]} {w(m[1])}, new dimension)", rule))
            passes.append(cands(r, ucb_moves, "step", "explore", explore_text, rule))
        elif alive and role == "probe":
            best = max(alive, key=lambda r: (r.reward, -r.iteration))
            rule = f"Node {best.iteration}: best R2 {best.raw:.4g}"
            # principle-test: undo the best-paying finding on the best node
            paying = sorted((m for m in stats if stats[m][0] > 0), key=lambda m: (-stats[m][0], m))
            principle = cands(
                best, [(p, -d) for p, d in paying if p in self._space], "step", "principle-test",
                lambda m: f"principle-test (reverse {m[0]} {w(-m[1])})", rule,
            )
            boundary = cands(best, ucb_moves, "bound", "boundary-probe",
                             lambda m: f"boundary-probe ({m[0]} to {w(m[1])} bound)", rule)
            # alternate the two kinds of probe from one batch to the next
            if (batch_in_block + k) % 2 == 0:
                passes += [principle, boundary]
            else:
                passes += [boundary, principle]
        plan = self._choose(passes + fallback, state)
        if plan is None:  # every parameter is fixed: nothing to move
            plan = _Plan(dict(root), None, None, role, f"{role} (no move possible)", None, "root")
        return plan
