"""The UCB tree of a study and its PUCT scores (SPEC §5): the one computation the sampler plans with
and ``<name>_ucb_scores.txt`` shows, so the file ranks nodes exactly as the sampler acted on them.

A node is a finished trial. Its reward is the objective value told to Optuna, sign-corrected so that
larger is better; the sweep tells R2 clipped to [-1, 1] (``study.OBJECTIVE_BOUNDS``), so one exploded
rollout cannot swamp the tree. Failed and pruned trials have no reward: they count as visits of their
branch but score ``failed_reward`` (0.0; a minimised objective's worst reward) -- a pruned trial's last intermediate R2 is not the result of
its configuration, and neither kind is ever a parent.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from .tree import Node, NodeScore, block_of, puct_scores

PLAN_KEY = "ucb_tree:plan"  # trial system attr: the sampler's full plan (config, parent, move, ...)
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

Move = tuple[str, int]  # (param, direction +1/-1)


@dataclass(frozen=True)
class TreeNode:
    """One finished trial seen as a node of the tree."""

    iteration: int  # trial.number + 1
    block: int
    parent: int | None  # iteration of the parent; None = the block's root configuration
    move: Move | None  # the one-parameter move from the parent (UCB-planned trials only)
    value: float | None  # the objective value as told; None = failed, pruned or NaN
    reward: float | None  # ``value`` sign-corrected: larger is better
    trial: FrozenTrial


def reward_sign(study: Study, objective_index: int = 0) -> float:
    """+1 for a maximised objective, -1 for a minimised one."""
    return 1.0 if study.directions[objective_index] == StudyDirection.MAXIMIZE else -1.0


def tree_nodes(
    study: Study,
    n_iter_block: int,
    objective_index: int = 0,
    before: int | None = None,
    trials: Iterable[FrozenTrial] | None = None,
) -> list[TreeNode]:
    """The study's finished trials (numbered below ``before``) as nodes, by iteration; ``trials``: a
    snapshot of the study's trials already taken (so that a caller's other views agree with it)."""
    sign = reward_sign(study, objective_index)
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=FINISHED)
    nodes = []
    for t in trials:
        if t.state not in FINISHED or (before is not None and t.number >= before):
            continue
        plan = t.system_attrs.get(PLAN_KEY)
        # trials the UCB sampler did not plan (other samplers, enqueued lab batches) say their parent
        parent = plan.get("parent") if plan else t.user_attrs.get("parent")
        move = plan.get("move") if plan else None
        value = None
        if t.state == TrialState.COMPLETE and t.values is not None:
            v = float(t.values[objective_index])
            value = None if math.isnan(v) else v
        it = t.number + 1
        nodes.append(
            TreeNode(
                iteration=it,
                block=block_of(it, n_iter_block),
                parent=parent,
                move=(move[0], int(move[1])) if move else None,
                value=value,
                reward=None if value is None else sign * value,
                trial=t,
            )
        )
    nodes.sort(key=lambda n: n.iteration)
    return nodes


def block_scores(nodes: Iterable[TreeNode], block: int, c: float) -> dict[int, NodeScore]:
    """PUCT score of every node of ``block`` (nodes of other blocks are ignored); a parent outside
    the block counts as the block's root."""
    in_block = [n for n in nodes if n.block == block]
    ids = {n.iteration for n in in_block}
    tree = [
        Node(n.iteration, n.parent if n.parent in ids else None, n.reward, block) for n in in_block
    ]
    # a failed node scores 0 ("no fit" for an R2); for a minimised objective (heldout_loss: every reward is
    # -loss < 0) it scores as the block's worst result, so a failure never outranks a result
    minimised = any(n.value and n.reward == -n.value for n in in_block)
    worst = min([0.0, *(n.reward for n in in_block if n.reward is not None)])
    return puct_scores(tree, c=c, failed_reward=worst if minimised else 0.0)


def by_score(nodes: Iterable[TreeNode], scores: dict[int, NodeScore]) -> list[TreeNode]:
    """Nodes by UCB, best first; ties go to the earlier iteration (the sampler's and the file's order)."""
    return sorted(nodes, key=lambda n: (-scores[n.iteration].ucb, n.iteration))
