"""How far can a parent tree get in 8 trials on the lab's search? A bound read off the screen's model.

By trial 8 a tree in batches of four has trained its first batch (trials 1-4) and four children of them, each
child one parameter moved from a finished parent (the lab's semantics). So the best R2 it can hold after 8
trials is the best of its first batch and of that batch's one-move neighbourhoods, whatever chooses the moves.
Taking the screen's model of the kept full-length lab trials (`bench_samplers.py --problem lab_surrogate`:
the ARD GP, Spearman 0.97 with trained R2 in cross-validation) as the truth, this computes that bound per
sampler seed for the guided tree's covering first batch (the baseline and three Latin-hypercube draws), beside
what the guided tree's own second batch reached (`sweep=ucb_guided`, the same model's mean), and for
first batches of four random draws; against it, how often 8 random draws hold 0.5. Then what rules that do not
know the answer reach when they choose the second batch's four one-move children (the bound assumes the right ones):
four parameters at random moved to a bound, or the four best children by a Gaussian process of the first batch's
four results (isotropic or ARD; mean + sd or the mean; of the best point, or of any of the four); and, for
scale, a rule that knows the direction of this problem's answer (the best point's learning rates raised tenfold).

    python scripts/one_move_bound.py --seeds 30
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_samplers import LAB_SPACE, lab_surrogate, one_study  # noqa: E402

LEARNING_RATES = ("lr_k", "lr_node", "lr_sub")
GRID = 64  # values tried along a continuous parameter (log scale) for its one-move neighbourhood


def values_of(dist) -> list:
    """The values one move can set a parameter to: every choice, or a grid over the (log) interval."""
    if hasattr(dist, "choices"):
        return list(dist.choices)
    lo, hi = float(dist.low), float(dist.high)
    if dist.log:
        return [float(v) for v in np.exp(np.linspace(math.log(lo), math.log(hi), GRID))]
    return [float(v) for v in np.linspace(lo, hi, GRID)]


def best_within_one_move(gp, space: dict, batch: list[dict]) -> float:
    """The model's best mean over the batch's configurations and every one-parameter move of each."""
    from oscsim.sweep.surrogate import encode

    points = []
    for config in batch:
        points.append(config)
        for name, dist in space.items():
            points.extend({**config, name: v} for v in values_of(dist) if v != config[name])
    mu, _ = gp.predict(np.stack([encode(space, p) for p in points]))
    return float(mu.max())


def chosen_by_rules(space: dict, batch: list[dict], seen: list[float], truth, rng: np.random.Generator) -> dict:
    """Whether each rule's four children (with the batch) reach `truth` >= level: the share of 200 draws for the
    random rule, 0/1 for the deterministic ones. `seen` is what a sampler sees of the batch (noisy R2)."""
    from oscsim.sweep.moves import step
    from oscsim.sweep.surrogate import encode, fit

    names = list(space)
    best = batch[int(np.argmax(seen))]
    picks = []
    for _ in range(200):  # four parameters at random, each to a bound (the tree's own bound move), the other
        children = []     # bound where the parent already sits at the drawn one
        for i in rng.choice(len(names), 4, replace=False):
            n, direction = names[i], -1 if rng.random() < 0.5 else 1
            v = step(space[n], best[n], direction, "bound")
            children.append({**best, n: step(space[n], best[n], -direction, "bound") if v is None else v})
        picks.append(truth(children))
    out = {"four parameters at random, to a bound, of the best point": float(np.mean(picks))}
    # Not a rule a sampler could know: the direction read off this problem's answer (learning rates too low for
    # the budget), to show what such a prior would be worth. Capped at each range's top.
    raised = [{**best, n: min(float(space[n].high), 10.0 * best[n])} for n in LEARNING_RATES]
    out["(knowing the answer's direction) the best point's three learning rates x10"] = float(truth(raised))
    for label, ard, parents, beta in (("GP (isotropic), mean + sd, of the best point", False, [best], 1.0),
                                      ("GP (ARD), mean + sd, of the best point", True, [best], 1.0),
                                      ("GP (isotropic), mean, of the best point", False, [best], 0.0),
                                      ("GP (isotropic), mean + sd, of any point", False, batch, 1.0)):
        gp = fit(space, batch, seen, ard=ard)
        cands = [(i, n, {**p, n: v}) for i, p in enumerate(parents) for n in names for v in values_of(space[n])
                 if v != p[n]]
        m, sd = gp.predict(np.stack([encode(space, c) for _, _, c in cands]))
        used, children = set(), []
        for j in np.argsort(-(m + beta * sd), kind="stable"):  # best first, one child per (parent, parameter)
            i, n, c = cands[j]
            if (i, n) not in used and len(children) < 4:
                used.add((i, n))
                children.append(c)
        out[label] = float(truth(children))
    return out


def main() -> None:
    from oscsim.sweep.moves import draw
    from oscsim.sweep.space import parse_search_space
    from oscsim.sweep.surrogate import encode

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=30, help="sampler seeds (covering first batches): 0..N-1")
    ap.add_argument("--random", type=int, default=2000, help="random first batches (and sets of 8 random draws)")
    ap.add_argument("--level", type=float, default=0.5)
    args = ap.parse_args()

    space = parse_search_space(LAB_SPACE)[0]
    gp, noise_sd = lab_surrogate(space)
    mean = lambda configs: gp.predict(np.stack([encode(space, c) for c in configs]))[0]  # noqa: E731

    covering, rules = [], []
    with tempfile.TemporaryDirectory() as d:  # the tree's first batch: what its sampler plans on each seed
        for seed in range(args.seeds):
            trials = one_study("lab_surrogate", "ucb_tree+gp+cover", seed, 8, 1.0, Path(d))
            batch = [t["params"] for t in trials[:4]]
            realised = float(mean([t["params"] for t in trials]).max())  # the tree's own 8 trials, same model
            covering.append((float(mean(batch).max()), best_within_one_move(gp, space, batch), realised))
            first = covering[-1][0]
            rules.append(chosen_by_rules(space, batch, [t["R2"] for t in trials[:4]],
                                         lambda ch, f=first: max(f, float(mean(ch).max())) >= args.level,
                                         np.random.default_rng(seed)))
    rng = np.random.default_rng(0)
    random_configs = lambda n: [{k: draw(d, rng) for k, d in space.items()} for _ in range(n)]  # noqa: E731
    rand_first, rand_bound, rand8 = [], [], []
    for _ in range(args.random):
        batch = random_configs(4)
        rand_first.append(float(mean(batch).max()))
        rand8.append(float(mean(batch + random_configs(4)).max()))
    for _ in range(min(args.random, 300)):  # the one-move search is the costly part
        rand_bound.append(best_within_one_move(gp, space, random_configs(4)))

    lv = args.level
    cov_first = np.array([c[0] for c in covering])
    cov_bound = np.array([c[1] for c in covering])
    print(f"screen model: {len(gp.X)} kept lab trials, noise sd {noise_sd:.3f}; level {lv}")
    print(f"covering first batch, {args.seeds} seeds: best of the batch >= {lv} on {np.sum(cov_first >= lv)}; "
          f"best within one move >= {lv} on {np.sum(cov_bound >= lv)} "
          f"(>= {lv} - noise sd on {np.sum(cov_bound >= lv - noise_sd)}); median bound {np.median(cov_bound):.3f}")
    realised = np.array([c[2] for c in covering])
    print(f"  the guided tree's own first 8 trials (sweep=ucb_guided, the model's mean): >= {lv} on "
          f"{np.sum(realised >= lv)} seeds")
    print("  per seed (batch / within one move / the tree's 8): "
          + ", ".join(f"{a:.2f}/{b:.2f}/{c:.2f}" for a, b, c in covering))
    for label in rules[0]:
        print(f"  second batch chosen by rule, {label}: >= {lv} on {sum(r[label] for r in rules):.1f} seeds")
    rb = np.array(rand_bound)
    print(f"random first batch of 4, {len(rb)} batches: best within one move >= {lv} in {np.mean(rb >= lv):.1%} "
          f"(median bound {np.median(rb):.3f}); the batch itself >= {lv} in {np.mean(np.array(rand_first) >= lv):.1%}")
    print(f"8 random draws, {len(rand8)} sets: best >= {lv} in {np.mean(np.array(rand8) >= lv):.1%}")


if __name__ == "__main__":
    main()
