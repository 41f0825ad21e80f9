"""Build-time warm-up for the container: compile umap/numba and analyse the bundled runs.

``python -m ncviz.server.warmup`` — the results land in the activation/results cache, so the
dashboard's first page needs no computation.
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    start = time.perf_counter()
    from ncviz.analysis import analyze
    from ncviz.demos.catalog import bundled_runs, bundled_runs_dir

    for name in bundled_runs():
        analyze(bundled_runs_dir() / name)
    print(f"analysed {len(bundled_runs())} bundled runs in {time.perf_counter() - start:.1f} s")
    from ncviz.embedding import embed

    rng = np.random.default_rng(0)
    embed(rng.standard_normal((300, 8)), np.repeat(np.arange(3), 100), method="umap")
    print(f"umap compiled; warm-up took {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
