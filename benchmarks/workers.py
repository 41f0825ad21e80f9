"""Cost of running an analysis in a budgeted worker process (ncviz.server.workers), not in-process.

Measured in one process on the same work: analyses of the bundled digits-mlp run (25 checkpoints,
no cache) and of its final checkpoint alone, and a follow-up job as the dashboard isolates it (the
PCA embedding of the final checkpoint's classifier input: the source travels to the worker, which
reads the features again); the first worker call also starts the fork server.

Run by hand: ``.venv/bin/python benchmarks/workers.py``.
"""

from __future__ import annotations

import time

from timing import best_of

from ncviz.analysis import analyze
from ncviz.demos.catalog import bundled_runs_dir
from ncviz.server.requests import embed_layer
from ncviz.server.workers import run_in_worker


def main() -> None:
    run = bundled_runs_dir() / "digits-mlp"
    start = time.perf_counter()
    run_in_worker(analyze, run, cache=False, checkpoint_filter=None)
    print(f"first worker call (fork server start + analysis): {time.perf_counter() - start:.2f} s")
    cases = [("digits-mlp, 25 checkpoints", None), ("digits-mlp, final checkpoint", _final)]
    for label, checkpoint_filter in cases:
        args = {"cache": False, "checkpoint_filter": checkpoint_filter}
        here = best_of(lambda args=args: analyze(run, **args))
        there = best_of(lambda args=args: run_in_worker(analyze, run, **args))
        print(
            f"{label:<30} in-process {here:6.2f} s  worker {there:6.2f} s  "
            f"ratio {there / here:5.2f}×  (+{there - here:.2f} s)"
        )
    source = analyze(run, cache=False, checkpoint_filter=_final).origin
    where = (source, "epoch_0600.safetensors", "classifier:input")
    here = best_of(lambda: embed_layer(*where))
    there = best_of(lambda: run_in_worker(embed_layer, *where))
    label = "embedding job (PCA, 1,400 rows)"
    print(
        f"{label:<30} in-process {here:6.2f} s  worker {there:6.2f} s  "
        f"ratio {there / here:5.2f}×  (+{there - here:.2f} s)"
    )


def _final(path) -> bool:
    return "0600" in path.name


if __name__ == "__main__":
    main()
