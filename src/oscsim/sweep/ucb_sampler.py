"""An Optuna sampler that runs the lab's PUCT tree search (SPEC §5).

Every trial is a node: a copy of its parent's configuration with exactly one parameter moved.
Trials are asked ``n_parallel`` at a time (one batch) before any of them is told, so the plan of a
batch is a pure function of

    (seed, the finished trials numbered before the batch, slot)

It never depends on sampler state: a new sampler instance on the same storage (a restarted sweep)
makes the same plan, and every trial of a batch sees the same inputs. Randomness (only used to
break ties) comes from a numpy Generator seeded with ``(seed, trial.number)``.

The maths lives in named modules: the tree's scores (``scores``), one move of one parameter
(``moves``), what moves have paid (``move_stats``) and the plan of a slot (``planner``).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from .move_stats import MoveStats, move_stats
from .moves import canon, contains, draw
from .planner import FIRST_BATCHES, GUIDES, Config, TreeSettings, plan_batch, plan_slot
from .surrogate import Prior, PriorStudies
from .scores import PLAN_KEY, TreeNode, tree_nodes
from .tree import batch_of, block_of, slot_of


class UCBTreeSampler(BaseSampler):
    """PUCT tree search over one-parameter mutations, batch-parallel and restart-safe.

    Args:
        search_space: the parameters the tree moves.
        base_params: the root configuration (block 1's baseline); a missing or invalid value is drawn
            once from the seed.
        n_parallel: trials per batch (the lab's slots).
        n_iter_block: iterations per block; a multiple of ``n_parallel``.
        ucb_c: the PUCT exploration constant ``c``.
        objective_index: the objective that is the reward (a multi-objective study's first by default).
        seed: seeds every tie-break; None draws one (plans then reproduce only within this instance).
        first_batch_params: parameters of block 1's one-at-a-time spread (default: the first
            ``n_parallel - 1`` of the space).
        guide: "none" (the lab's move statistics order a slot's moves), "gp" (a Gaussian process of the
            finished trials orders them and says how far each goes; ``surrogate``) or "gp_ard" (the same with one
            length scale per parameter, fitted).
        first_batch: "lab" (block 1's first batch: the baseline and one-at-a-time moves of first_batch_params,
            the seed's Batch 1) or "cover" (the baseline and a Latin hypercube over the space).
        rerun_root: True (the lab's): each later block's first batch retrains its root, an earlier block's best
            node; False: no configuration is trained twice, the root's children name its node as their parent.
        exploit_beta: with a guide, an exploit slot's child is the one with the highest mean + exploit_beta sd
            (explore and probe slots: 2 sd); 0 takes the model's best guess, however few trials it has seen.
        prior: earlier studies' finished trials, one list of (params, reward) per study: the guide's model
            starts from what they say over the parameters they share with this space (``surrogate.Prior``), so
            it orders moves from the first batch on. Needs a guide.
    """

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
        guide: str = "none",
        first_batch: str = "lab",
        rerun_root: bool = True,
        exploit_beta: float = 1.0,
        prior: PriorStudies | None = None,
    ) -> None:
        if n_parallel < 1:
            raise ValueError("n_parallel must be >= 1")
        if n_iter_block < 1 or n_iter_block % n_parallel:
            # a batch must never straddle two blocks (two roots in one batch)
            raise ValueError("n_iter_block must be a positive multiple of n_parallel")
        if not search_space:
            raise ValueError("empty search space")
        if guide not in GUIDES:
            raise ValueError(f"guide={guide}: must be one of {', '.join(GUIDES)}")
        if first_batch not in FIRST_BATCHES:
            raise ValueError(f"first_batch={first_batch}: must be one of {', '.join(FIRST_BATCHES)}")
        if not exploit_beta >= 0:
            raise ValueError(f"exploit_beta={exploit_beta}: must be >= 0")
        if prior and guide == "none":
            raise ValueError("a prior needs a guide: guide=gp or gp_ard")
        space = dict(search_space)
        if first_batch_params is None:
            first_batch_params = list(space)[: max(n_parallel - 1, 1)]
        unknown = [p for p in first_batch_params if p not in space]
        if unknown:
            raise ValueError(f"first_batch_params not in the search space: {unknown}")
        self._base = dict(base_params)
        self._objective_index = objective_index
        self._seed = (int(np.random.SeedSequence().entropy) if seed is None else int(seed)) % 2**63
        root = {k: self._base_value(k, d) for k, d in space.items()}
        self._tree = TreeSettings(space, root, list(first_batch_params), n_parallel, n_iter_block, float(ucb_c), guide,
                                  first_batch, bool(rerun_root), float(exploit_beta),
                                  Prior(space, prior) if prior else None)

    @property
    def seed(self) -> int:
        return self._seed

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._tree.space)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # planning at ask() time: attributes exist even if the objective never suggests
        self._ensure_plan(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        plan = self._ensure_plan(study, trial)
        return {k: v for k, v in plan["config"].items() if k in search_space}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if param_name in self._base and contains(param_distribution, self._base[param_name]):
            return canon(param_distribution, self._base[param_name])
        return draw(param_distribution, self._rng(trial.number, param_name))

    def first_batch(self) -> list[dict[str, Any]]:
        """The configurations an empty study's first batch runs (block 1, before any trial has finished): what
        this sampler would plan for trials 0 .. n_parallel-1, to read or to give another sampler as a start."""
        return [dict(p.config) for p in plan_batch(self._tree, [], {}, 0, self._tree.n_parallel, self._rng)]

    def move_stats(self, study: Study) -> MoveStats:
        """Mean reward change and count per (param, direction) over all finished trials."""
        return move_stats(self._finished(study, before=None)[0], self._tree.n_iter_block)

    def _rng(self, number: int, salt: str = "") -> np.random.Generator:
        words = [self._seed, number] + ([zlib.crc32(salt.encode())] if salt else [])
        return np.random.default_rng(words)

    def _base_value(self, name: str, dist: BaseDistribution) -> Any:
        if name in self._base and contains(dist, self._base[name]):
            return canon(dist, self._base[name])
        # missing / invalid base value: a fixed draw, so the root is the same in every process
        return draw(dist, self._rng(0, "root:" + name))

    def _finished(self, study: Study, before: int | None) -> tuple[list[TreeNode], dict[int, Config]]:
        """Finished trials numbered below ``before`` as nodes, and the configuration of each."""
        nodes = tree_nodes(study, self._tree.n_iter_block, self._objective_index, before)
        configs = {}
        for n in nodes:
            plan = n.trial.system_attrs.get(PLAN_KEY)
            config = dict(plan["config"]) if plan else dict(self._tree.root)
            # params actually used win over the plan (enqueued / fixed params)
            space = self._tree.space
            config.update({k: canon(space[k], v) for k, v in n.trial.params.items() if k in space})
            configs[n.iteration] = config
        return nodes, configs

    def _ensure_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        # The trial handed to the sampler is a snapshot taken before before_trial stored the plan, and
        # Optuna has no public setter for a sampler's trial attributes: like Optuna's own GridSampler,
        # read and write them through the study's storage.
        storage = study._storage
        stored = storage.get_trial_system_attrs(trial._trial_id).get(PLAN_KEY)
        if stored is not None:
            return stored
        it = trial.number + 1
        n_parallel = self._tree.n_parallel
        slot = slot_of(it, n_parallel)
        start = trial.number - slot
        nodes, configs = self._finished(study, before=start)
        plan = plan_slot(self._tree, nodes, configs, start, slot, self._rng)
        data = plan.as_json()
        storage.set_trial_system_attr(trial._trial_id, PLAN_KEY, data)
        attrs = {
            "parent": plan.parent,
            "slot": slot,
            "role": plan.role,
            "strategy": plan.strategy,
            "mutation": plan.mutation,
            "parent_rule": plan.parent_rule,
            "block": block_of(it, self._tree.n_iter_block),
            "batch": batch_of(it, n_parallel),
            "iter": it,
        }
        for k, v in attrs.items():  # shown by optuna-dashboard; the log computes its own from the iteration
            storage.set_trial_user_attr(trial._trial_id, k, v)
        return data
