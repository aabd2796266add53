"""The plan of one slot of a batch: which parent, which move, in which role (SPEC §5).

Roles cycle with the iteration, ``(iteration-1) % 4``: exploit, exploit, explore, probe (for n_parallel=4
this is exactly the slot). The first batch of a block starts from the block's root: slot 0 is the baseline
(root unchanged), the others one move each (block 1: one-at-a-time over ``first_batch_params``, as the
seed's Batch 1; or, ``first_batch="cover"``, one Latin hypercube over the space, chosen by the prior when
there is one). Later batches choose parents by the tree's scores:

* exploit: the k-th node by UCB (k counts exploit slots in this batch); the first one takes the move that
  paid most so far, with the conservative step.
* explore: the least-visited node, moving a dimension not yet moved in the block.
* probe: on the best node, principle-test (undo the best-paying finding) on even batches of a block and
  boundary-probe (jump to a bound) on odd ones, each falling back to the other when it has no candidate.

A move that changes nothing (parameter at its bound) or that would recreate a configuration already in the
block is skipped for the next candidate (other direction, other parameter, other parent).

With ``rerun_root`` off, no configuration the study has trained is trained again: a later block's first batch
drops the baseline slot (the root is an earlier block's best node, already trained: with a seed in the config,
its rerun repeats its R2 exactly) and its slots are children of that node, so their moves are scored against it;
a move recreating a configuration of any block is skipped.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution

from .move_stats import move_stats, paying_moves, rank_paying, rank_ucb
from .moves import all_moves, describe, latin, line, step
from .scores import Move, TreeNode, block_scores, by_score
from .surrogate import Prior, encode, fit
from .tree import block_of

ROLE_CYCLE = ("exploit", "exploit", "explore", "probe")
Config = dict[str, Any]


@dataclass
class Plan:
    config: Config
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


@dataclass(frozen=True)
class Candidate:
    """A possible child: its parent's config and one move."""

    parent: int | None
    parent_config: Config
    move: Move
    kind: str  # "step" | "small" | "bound" (moves.step)
    role: str
    strategy: Callable[[Move], str]
    parent_rule: str
    value: Any = None  # the moved parameter's new value, when a guide chose how far (else: `kind`'s step)


@dataclass(frozen=True)
class TreeSettings:
    space: dict[str, BaseDistribution]
    root: Config  # block 1's root: the base configuration
    first_params: list[str]
    n_parallel: int
    n_iter_block: int
    c: float
    guide: str = "none"  # "gp" | "gp_ard": a Gaussian process of the finished trials orders each slot's moves (surrogate.py)
    first_batch: str = "lab"  # block 1's first batch: "lab" (baseline + one-at-a-time moves) | "cover" (baseline + a Latin hypercube)
    rerun_root: bool = True  # a later block's first batch retrains its root (the lab's baseline slot)
    exploit_beta: float = 1.0  # the guide scores an exploit slot's children by mean + exploit_beta sd
    prior: Prior | None = None  # earlier studies' model: the guide starts from it (surrogate.WithPrior)


GUIDES = ("none", "gp", "gp_ard")
FIRST_BATCHES = ("lab", "cover")
COVER_CANDIDATES = 64  # Latin hypercubes a prior chooses the covering first batch from
BETA = {"explore": 2.0, "principle-test": 2.0, "boundary-probe": 2.0}  # mean + beta sd (exploit: TreeSettings)


def plan_slot(
    settings: TreeSettings,
    nodes: Sequence[TreeNode],
    configs: Mapping[int, Config],
    start: int,
    slot: int,
    rng_for: Callable[[int], np.random.Generator],
) -> Plan:
    """Plan of ``slot`` in the batch whose first trial number is ``start``, from the nodes finished before it.
    The slots before it are planned too (same inputs, same result) so slots never duplicate each other."""
    return plan_batch(settings, nodes, configs, start, slot + 1, rng_for)[-1]


def plan_batch(
    settings: TreeSettings,
    nodes: Sequence[TreeNode],
    configs: Mapping[int, Config],
    start: int,
    n_slots: int,
    rng_for: Callable[[int], np.random.Generator],
) -> list[Plan]:
    """Plans of the first ``n_slots`` slots of the batch whose first trial number is ``start``, in order."""
    batch = _Batch(settings, nodes, configs, start, rng_for(start))
    counts = {"exploit": 0, "explore": 0, "probe": 0}
    plans = []
    for s in range(n_slots):
        number = start + s
        role = ROLE_CYCLE[number % len(ROLE_CYCLE)]
        k, counts[role] = counts[role], counts[role] + 1
        rng = rng_for(number)
        plan = batch.first_slot(s, role, rng) if batch.batch_in_block == 1 else batch.later_slot(role, k, rng)
        batch.take(plan)
        plans.append(plan)
    return plans


def config_key(config: Config) -> str:
    return json.dumps(config, sort_keys=True)


def _word(d: int) -> str:
    return "high" if d > 0 else "low"


def _explore_text(m: Move) -> str:
    return f"explore ({m[0]} {_word(m[1])})"


class _Batch:
    """One batch being planned: the block's tree as it stood before the batch, and what earlier slots took."""

    def __init__(
        self, settings: TreeSettings, nodes: Sequence[TreeNode], configs: Mapping[int, Config], start: int,
        batch_rng: np.random.Generator | None = None,
    ) -> None:
        self.s, self.configs = settings, configs
        self.batch_rng = batch_rng  # draws shared by the batch's slots (the covering first batch)
        self._cover: list[Config] | None = None
        it0 = start + 1
        self.block = block_of(it0, settings.n_iter_block)
        block_start = (self.block - 1) * settings.n_iter_block + 1
        self.batch_in_block = (it0 - block_start) // settings.n_parallel + 1
        block_nodes = [n for n in nodes if n.block == self.block]
        self.root, self.root_rule, root_node = self._block_root([n for n in nodes if n.iteration < block_start])
        # the root's node, when it is a trained node (a later block) that is not to be retrained: parent of the root's children
        self.root_id = None if settings.rerun_root else root_node
        self.moves = all_moves(settings.space)
        self.stats = move_stats(nodes, settings.n_iter_block)
        self.scores = block_scores(block_nodes, self.block, settings.c)
        self.alive = [n for n in block_nodes if n.reward is not None]  # failed configs are not parents
        self.by_ucb = by_score(self.alive, self.scores)
        # configs not to recreate: the block's so far (the lab's rule), or every trained one
        self.taken = {config_key(configs[n.iteration]) for n in (block_nodes if settings.rerun_root else nodes)}
        self.used: set[tuple[int | None, str]] = set()  # (parent, param) moved in this batch
        self.moved_params = {n.move[0] for n in block_nodes if n.move}  # params moved in this block
        done = [n for n in nodes if n.reward is not None]
        self.gp = (fit(settings.space, [configs[n.iteration] for n in done], [n.reward for n in done],
                       ard=settings.guide == "gp_ard", prior=settings.prior) if settings.guide != "none" else None)

    def _block_root(self, earlier: list[TreeNode]) -> tuple[Config, str, int | None]:
        """The block's root configuration, its parent rule, and the node it is (None: the base configuration)."""
        if self.block == 1:
            return dict(self.s.root), "root (initial batch)", None
        done = [n for n in earlier if n.reward is not None]
        if not done:  # nothing ever completed: restart from the base configuration
            return dict(self.s.root), f"root (block {self.block}: base config, no completed node)", None
        best = max(done, key=lambda n: (n.reward, -n.iteration))
        rule = f"root (block {self.block}: best so far = Node {best.iteration}, R2={best.value:.4g})"
        return dict(self.configs[best.iteration]), rule, best.iteration

    # ------------------------------------------------------------------ slots

    def first_slot(self, s: int, role: str, rng: np.random.Generator) -> Plan:
        """A slot of the block's first batch: the baseline, then one move each from the root."""
        if s == 0 and config_key(self.root) not in self.taken:  # (never, with rerun_root off, once the root is trained)
            return Plan(dict(self.root), None, None, "exploit", "exploit (baseline)", None, self.root_rule)
        if self.block == 1 and self.s.first_batch == "cover":  # the rest of the batch spreads over the space
            how = f"the prior's pick of {COVER_CANDIDATES}" if self.prior_picks_cover else "one draw"
            return Plan(dict(self.cover()[s - 1]), None, None, "explore", f"explore (Latin hypercube over the space, {how})",
                        None, self.root_rule)
        ranked = rank_ucb(self.moves, self.stats, self.s.c, rng)
        first: list[Move] = []
        if self.block == 1:
            # one-at-a-time spread over first_batch_params: up, except the slot whose role is the
            # contrarian "probe" which goes down (seed Batch 1: lr_k up, lr_node up, lr_sub down)
            p = self.s.first_params[(s - 1) % len(self.s.first_params)]
            d = -1 if role == "probe" else 1
            first = [(p, d), (p, -d)]
        passes = [self._cands(None, moves, "step", "explore", _explore_text, self.root_rule) for moves in (first, ranked)]
        plan = self._choose(passes)
        if plan is None:  # every parameter is fixed: nothing to move
            plan = Plan(dict(self.root), None, None, "explore", "explore (no move possible)", None, self.root_rule)
        return plan

    @property
    def prior_picks_cover(self) -> bool:
        return self.s.prior is not None and self.gp is not None

    def cover(self) -> list[Config]:
        """The covering batch's configurations (the root with each draw): one Latin hypercube for all its slots, drawn
        once (each slot drawing its own would give independent points, not one per stratum). With a prior, the
        hypercube of COVER_CANDIDATES whose best point the prior scores highest (mean + exploit_beta sd): still one
        draw per stratum, one of them where earlier studies did well."""
        if self._cover is None:
            assert self.batch_rng is not None
            n = self.s.n_parallel - 1
            draws = COVER_CANDIDATES if self.prior_picks_cover else 1
            cubes = [[{**self.root, **d} for d in latin(self.s.space, n, self.batch_rng)] for _ in range(draws)]
            if draws == 1:
                self._cover = cubes[0]
            else:
                mu, sd = self.gp.predict(np.stack([encode(self.s.space, c) for cube in cubes for c in cube]))
                best = (mu + self.s.exploit_beta * sd).reshape(draws, n).max(axis=1)
                self._cover = cubes[int(np.argmax(best))]
        return self._cover

    def later_slot(self, role: str, k: int, rng: np.random.Generator) -> Plan:
        """A slot after the block's first batch; ``k`` counts the earlier slots of the same role in this
        batch (2nd exploit slot -> 2nd-highest UCB node, ...)."""
        ucb_moves = rank_ucb(self.moves, self.stats, self.s.c, rng)
        passes: list[Iterable[Candidate]] = []
        if self.alive and role == "exploit":
            passes = self._exploit(k, ucb_moves, rng)
        elif self.alive and role == "explore":
            passes = self._explore(k, ucb_moves)
        elif self.alive and role == "probe":
            passes = self._probe(k, ucb_moves)
        plan = self._choose(passes + self._fallback(role, ucb_moves))
        if plan is None:  # every parameter is fixed: nothing to move
            plan = Plan(dict(self.root), None, None, role, f"{role} (no move possible)", None, "root")
        return plan

    def take(self, plan: Plan) -> None:
        self.taken.add(config_key(plan.config))
        if plan.move:
            self.used.add((plan.parent, plan.move[0]))
            self.moved_params.add(plan.move[0])

    # ------------------------------------------------------------------ roles

    def _exploit(self, k: int, ucb_moves: list[Move], rng: np.random.Generator) -> list[Iterable[Candidate]]:
        if k == 0:  # the most-paying move, conservative step, on the top node
            top = self.by_ucb[0]
            paying = rank_paying(self.moves, self.stats, self.s.c, rng)
            return [self._cands(top, paying, "small", "exploit",
                                lambda m: f"exploit ({m[0]} {_word(m[1])}{self._small(m[0])})", self._ucb_rule(top, 0))]
        # the k-th node by UCB, or (too few nodes) the top node with another param
        i = min(k, len(self.by_ucb) - 1)
        r = self.by_ucb[i]
        return [self._cands(r, ucb_moves, "step", "exploit", lambda m: f"exploit ({m[0]} {_word(m[1])})",
                            self._ucb_rule(r, i))]

    def _explore(self, k: int, ucb_moves: list[Move]) -> list[Iterable[Candidate]]:
        """The least-visited node, a dimension not yet moved in the block first."""
        sc = self.scores
        fewest = sorted(self.alive, key=lambda n: (sc[n.iteration].visits, -sc[n.iteration].ucb, n.iteration))
        r = fewest[min(k, len(self.alive) - 1)]
        rule = f"Node {r.iteration}: fewest visits ({sc[r.iteration].visits})"
        fresh = [m for m in ucb_moves if m[0] not in self.moved_params]
        return [self._cands(r, fresh, "step", "explore",
                            lambda m: f"explore ({m[0]} {_word(m[1])}, new dimension)", rule),
                self._cands(r, ucb_moves, "step", "explore", _explore_text, rule)]

    def _probe(self, k: int, ucb_moves: list[Move]) -> list[Iterable[Candidate]]:
        best = max(self.alive, key=lambda n: (n.reward, -n.iteration))
        rule = f"Node {best.iteration}: best R2 {best.value:.4g}"
        # principle-test: undo the best-paying finding on the best node
        reverse = [(p, -d) for p, d in paying_moves(self.stats) if p in self.s.space]
        principle = self._cands(best, reverse, "step", "principle-test",
                                lambda m: f"principle-test (reverse {m[0]} {_word(-m[1])})", rule)
        boundary = self._cands(best, ucb_moves, "bound", "boundary-probe",
                               lambda m: f"boundary-probe ({m[0]} to {_word(m[1])} bound)", rule)
        # alternate the two kinds of probe from one batch to the next
        return [principle, boundary] if (self.batch_in_block + k) % 2 == 0 else [boundary, principle]

    def _fallback(self, role: str, ucb_moves: list[Move]) -> list[Iterable[Candidate]]:
        """Last resort for every role: any node by UCB (or the block root when none completed)."""
        if not self.alive:
            return [self._cands(None, ucb_moves, "step", "explore", _explore_text, "root (no completed node in block)")]
        fb_role = "explore" if role == "probe" else role
        return [self._cands(r, ucb_moves, "step", fb_role, _explore_text, self._ucb_rule(r, i))
                for i, r in enumerate(self.by_ucb)]

    # ------------------------------------------------------------------ candidates

    def _cands(self, parent: TreeNode | None, moves: Iterable[Move], kind: str, role: str,
               strategy: Callable[[Move], str], rule: str) -> Iterator[Candidate]:
        config = self.root if parent is None else self.configs[parent.iteration]
        pid = self.root_id if parent is None else parent.iteration
        for m in moves:
            yield Candidate(pid, config, m, kind, role, strategy, rule)

    def _choose(self, passes: Iterable[Iterable[Candidate]]) -> Plan | None:
        """First candidate that changes something, is new in the block and does not repeat a
        (parent, param) of this batch; then relax the last two conditions in turn."""
        lists = [list(p) for p in passes]
        if self.gp is not None:
            lists = [self._guided(cands) for cands in lists]
        for strict in (2, 1, 0):
            for cands in lists:
                for c in cands:
                    if strict == 2 and (c.parent, c.move[0]) in self.used:
                        continue
                    plan = self._make(c)
                    if plan is None or (strict >= 1 and config_key(plan.config) in self.taken):
                        continue
                    return plan
        return None

    def _guided(self, cands: list[Candidate]) -> list[Candidate]:
        """The candidates' moves taken to every distance along their parameter (``moves.line``), best first by the
        GP's mean + beta sd of the child: the tree still chose the parent and the role, the model says how far."""
        wide = [replace(c, value=v, strategy=lambda m, s=c.strategy: f"{s(m)} [gp]")
                for c in cands for v in line(self.s.space[c.move[0]], c.parent_config.get(c.move[0]), c.move[1])]
        plans = [(c, self._make(c)) for c in wide]
        plans = [(c, p) for c, p in plans if p is not None]
        if not plans:
            return cands
        mu, sd = self.gp.predict(np.stack([encode(self.s.space, p.config) for _, p in plans]))
        beta = {**BETA, "exploit": self.s.exploit_beta}
        score = mu + np.array([beta.get(c.role, 1.0) for c, _ in plans]) * sd
        order = np.argsort(-score, kind="stable")
        return [plans[i][0] for i in order]

    def _make(self, c: Candidate) -> Plan | None:
        p, d = c.move
        new = step(self.s.space[p], c.parent_config.get(p), d, c.kind) if c.value is None else c.value
        if new is None:
            return None
        config = dict(c.parent_config)
        old, config[p] = config[p], new
        return Plan(config, c.parent, c.move, c.role, c.strategy(c.move), describe(p, old, new), c.parent_rule)

    def _ucb_rule(self, r: TreeNode, rank: int) -> str:
        what = "highest UCB" if rank == 0 else f"UCB rank {rank + 1}"
        return f"Node {r.iteration}: {what} {self.scores[r.iteration].ucb:.3f}"

    def _small(self, param: str) -> str:
        # categorical moves have no smaller step; only say "small step" when there is one
        return "" if isinstance(self.s.space[param], CategoricalDistribution) else ", small step"
