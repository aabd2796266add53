"""Where a compiled training step's time goes, kernel by kernel (run by hand).

Trains `--models` seeds of the default model (or `--model faithful`) on rank_50 as one compiled batch and times
every call the compiled graph makes: its generated C++ kernels and the library calls it hands out (matrix products,
keyed by operand shapes and strides). Prints microseconds per training step, the largest first, and the minor page
faults of the process. A wall-clock timer around each call, not torch.profiler: on this CPU the profiler charged a
~0.15 ms kernel with 2.6 ms a step. Relies on torch._inductor's generated modules (torch 2.13).

    python scripts/kernel_times.py --models 5 --iterations 1000
"""
from __future__ import annotations

import argparse
import collections
import resource
import tempfile
import time
from pathlib import Path

from torch._inductor import codecache

from bench_scaling import configs  # scripts/ is on the path when this file runs

TIMES: dict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter = collections.Counter()


def _timed(name: str, fn):
    def call(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        TIMES[name] += time.perf_counter() - t0
        CALLS[name] += 1
        return out
    return call


class _Externs:
    """Stands in for a generated module's `extern_kernels`, timing each call under its operands' layout."""

    def __init__(self, base):
        self._base = base

    def __getattr__(self, op: str):
        fn = getattr(self._base, op)

        def call(*args, **kwargs):
            key = f"{op} " + " ".join(f"{tuple(a.shape)}{tuple(a.stride())}" for a in args if hasattr(a, "stride"))
            return _timed(key, fn)(*args, **kwargs)
        return call


def _instrument() -> None:
    load = codecache.PyCodeCache.load_by_key_path.__func__

    def load_timed(cls, *args, **kwargs):
        module = load(cls, *args, **kwargs)
        for name, value in list(vars(module).items()):
            if name.startswith("cpp_fused"):
                setattr(module, name, _timed(name, value))
            elif name == "extern_kernels":
                setattr(module, name, _Externs(value))
        return module
    codecache.PyCodeCache.load_by_key_path = classmethod(load_timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--model", choices=("default", "faithful"), default="default")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    _instrument()
    from oscsim.train import train_many

    cfgs = configs(list(range(1, args.models + 1)), args.iterations, "cpu", 1, True, args.model)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with tempfile.TemporaryDirectory() as d:
        metrics = train_many(cfgs, [Path(d) / str(i) for i in range(len(cfgs))])
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    steps = min(n for k, n in CALLS.items() if k.startswith("cpp_fused"))  # a kernel every step runs once
    print(f"{args.models} x {args.model}, {steps} compiled steps: {metrics[0]['iterations_per_second']:.1f} it/s, "
          f"{faults} minor page faults in the run")
    for name, seconds in sorted(TIMES.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{seconds / steps * 1e6:9.1f} us/step  x{CALLS[name] / steps:.0f}  {name[:140]}")
    print(f"{sum(TIMES.values()) / steps * 1e6:9.1f} us/step in all timed calls")


if __name__ == "__main__":
    main()
