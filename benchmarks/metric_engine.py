"""Metric-engine speed, memory and behaviour on a busy machine, measured in one run.

1. Speed — float32 features, N = 50,000, d = 512, C = 10, 100, 1000, float32 W and b: the whole
   ``collapse_result`` (casts, both passes, NC4/accuracy, every metric) against the floor, one
   float64 XᵀX of the same data (its cast not timed). Repeats are interleaved (floor, engine,
   bare, peer, floor, …) and min / median of 5 printed. Targets: ≤ 1.5× the floor (min) at
   C = 10 and 100, ≤ 2.5× at C = 1000, faster than the float32 peer. "bare" is the arithmetic
   no exact engine can skip, alone (:func:`unavoidable_arithmetic`): what the engine adds to it
   is its overhead. The peer (rhubarbwu/neural-collapse) is timed when importable — put a
   checkout on PYTHONPATH; it is never vendored. Every engine result is checked against an
   independent float64 numpy reference (1e-10 relative).
2. Memory — C = 32,000, d = 512, N = 205,000 long-tailed labels (every class ≥ 2 samples),
   float32 features, W and b, every metric (``min_count=2``), in a child process: peak resident
   memory of that process, torch and the 420 MB of features included (target < 2 GB).
3. Threads — ``ncviz analyze checkpoints/digits-mlp`` (the whole process: imports, 25
   checkpoints, the tables written) from a cold cache, idle and beside two busy processes
   (:mod:`busy`), alternated, median of 3 (target ≤ 1.5× idle; one thread among three
   runnable ones gets 2/3 of two cores, so 1.5× is what a purely single-threaded process gets —
   measured in the same alternation as a control: a process spinning one second of CPU time);
   and a 128×128 ``eigvalsh`` on two threads vs one under that load.
4. Load — with ``--load N``, the speed cases again beside N processes spinning a core each
   (started and stopped here, :mod:`busy`), default threading: the ratios to the float64 Gram
   timed under the same load (targets with N = 2 on 2 cores: ≤ 1.5× at C = 100, ≤ 2.5× at
   C = 1000).

Run by hand: ``.venv/bin/python benchmarks/metric_engine.py [--quick] [--skip memory,threads]
[--load 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ncviz.metrics import collapse_result
from ncviz.metrics.stats import add_upper_gram_, chunk_slices
from ncviz.metrics.threads import run_in_slots, single_threaded, slot_count

sys.path.insert(0, str(Path(__file__).resolve().parent))
from busy import busy

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_KEYS = ("nc1", "nc1_trace_ratio", "cdnv", "nc2_etf_distance", "nc3", "nc4", "accuracy")


def make_data(n: int, d: int, num_classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, d, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    features = means[labels] + torch.randn(n, d, generator=g)
    weight = means + 0.1 * torch.randn(num_classes, d, generator=g)
    bias = 0.1 * torch.randn(num_classes, generator=g)
    return features, labels, weight, bias


def reference_metrics(features, labels, weight, bias) -> dict[str, float]:
    """Plain float64 numpy: per-class means, residuals, Σ_W, Σ_B, pair distances, decisions."""
    h = features.numpy().astype(np.float64)
    y = labels.numpy()
    w, b = weight.numpy().astype(np.float64), bias.numpy().astype(np.float64)
    n, d = h.shape
    c = int(y.max()) + 1
    counts = np.bincount(y, minlength=c)
    order = np.argsort(y, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(h[order], starts, axis=0) / counts[:, None]
    residual = h - means[y]
    within = residual.T @ residual / n
    m = means - means.mean(axis=0)
    between = m.T @ m / c
    out = {"nc1_trace_ratio": np.trace(within) / np.trace(between)}
    if c - 1 <= d:
        vals, vecs = np.linalg.eigh(between)
        vals, vecs = vals[::-1][: c - 1], vecs[:, ::-1][:, : c - 1]
        keep = vals > 1e-10 * vals[0]
        out["nc1"] = np.trace(vecs[:, keep].T @ within @ vecs[:, keep] / vals[keep]) / c
    variances = np.bincount(y, weights=(residual**2).sum(axis=1), minlength=c) / counts
    sq = (means**2).sum(axis=1)
    distances = sq[:, None] + sq[None, :] - 2 * means @ means.T
    upper = np.triu_indices(c, 1)
    out["cdnv"] = np.mean((variances[:, None] + variances[None, :])[upper] / (2 * distances[upper]))
    gram = m @ m.T
    etf = (np.eye(c) - 1 / c) / np.sqrt(c - 1)
    out["nc2_etf_distance"] = np.linalg.norm(gram / np.linalg.norm(gram) - etf)
    out["nc3"] = np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2)
    ncc = np.empty(n, dtype=np.int64)
    pred = np.empty(n, dtype=np.int64)
    for start in range(0, n, 4096):
        block = h[start : start + 4096]
        ncc[start : start + 4096] = (sq[None, :] - 2 * block @ means.T).argmin(axis=1)
        pred[start : start + 4096] = (block @ w.T + b).argmax(axis=1)
    out["nc4"] = float(np.mean(ncc != pred))
    out["accuracy"] = float(np.mean(pred == y))
    return out


def peer_runner(num_classes: int, d: int):
    """The peer library's float32 pipeline (its README's accumulators and measures), or the one
    line saying why it cannot run."""
    try:
        from neural_collapse.accumulate import (
            CovarAccumulator,
            DecAccumulator,
            MeanAccumulator,
            VarNormAccumulator,
        )
        from neural_collapse.measure import (
            clf_ncc_agreement,
            covariance_pinv,
            simplex_etf_error,
            variability_cdnv,
        )
    except Exception as error:  # any failure means "not importable"
        return f"{type(error).__name__}: {error}".splitlines()[0]

    def run(features, labels, weight, bias, batch: int = 4096):
        mean_acc = MeanAccumulator(num_classes, d, "cpu")
        for start in range(0, len(features), batch):
            mean_acc.accumulate(features[start : start + batch], labels[start : start + batch])
        means, global_mean = mean_acc.compute()
        var_acc = VarNormAccumulator(num_classes, d, "cpu", M=means)
        cov_acc = CovarAccumulator(num_classes, d, "cpu", M=means)
        dec_acc = DecAccumulator(num_classes, d, "cpu", M=means, W=weight)
        for start in range(0, len(features), batch):
            h, y = features[start : start + batch], labels[start : start + batch]
            var_acc.accumulate(h, y, means)
            cov_acc.accumulate(h, y, means)
            dec_acc.accumulate(h, y, weight, means)
        var_norms, _ = var_acc.compute()
        within = cov_acc.compute()
        return (
            covariance_pinv(means, within, global_mean),
            variability_cdnv(means, var_norms),
            simplex_etf_error(means),
            clf_ncc_agreement(dec_acc),
        )

    return run


def ratio_text(times: list[float], floor: list[float]) -> str:
    """min / median of ``times`` over min / median of the floor."""
    return (
        f"{min(times) / min(floor):.2f} / {statistics.median(times) / statistics.median(floor):.2f}"
    )


def unavoidable_arithmetic(features: torch.Tensor, num_classes: int) -> Callable[[], None]:
    """The two products an exact engine cannot skip, bare: the float32 score GEMM of the
    nearest-centre and classifier decisions (N × 2C × (d + 1), padded to 16 columns as the
    engine pads them; nothing is done with the scores) and the upper blocks of the float64
    within-class Gram, chunk by chunk on the engine's own chunks and workers
    (:func:`~ncviz.metrics.threads.run_in_slots`). Their time over the floor's is about the
    least ratio an exact engine can reach on this machine: no precision cheaper than float32 is
    native here (no AVX512-BF16 / VNNI: bfloat16 and int8 GEMMs ran at 4-23 GFLOP/s, float32 at
    ~150)."""
    n, d = features.shape
    width = -(-(d + 1) // 16) * 16
    rows = torch.randn(2 * num_classes, width, generator=torch.Generator().manual_seed(1))
    x = torch.cat([features, torch.ones(n, width - d)], dim=1)
    chunks = chunk_slices(n, d)
    slots = slot_count(len(chunks), 8 * d * (d + chunks[0].stop))  # as the engine's pass 2
    scores = [torch.empty(chunks[0].stop, 2 * num_classes) for _ in range(slots)]
    residual = [torch.empty(chunks[0].stop, d, dtype=torch.float64) for _ in range(slots)]
    scatter = [torch.zeros(d, d, dtype=torch.float64) for _ in range(slots)]

    def chunk(slot: int, part: slice) -> None:
        size = part.stop - part.start
        torch.mm(x[part], rows.T, out=scores[slot][:size])
        residual[slot][:size].copy_(features[part])
        add_upper_gram_(scatter[slot], residual[slot][:size])

    return lambda: run_in_slots(chunks, slots, chunk)


def speed_case(n: int, d: int, num_classes: int, repeats: int) -> None:
    features, labels, weight, bias = make_data(n, d, num_classes)
    x64 = features.double()
    peer = peer_runner(num_classes, d)
    runs = {
        "floor": lambda: x64.T @ x64,
        "engine": lambda: collapse_result(features, labels, weight, bias),
        "bare": unavoidable_arithmetic(features, num_classes),
    }
    if callable(peer):
        runs["peer"] = lambda: peer(features, labels, weight, bias)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved: a slow spell of the machine hits every method
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    result = collapse_result(features, labels, weight, bias)
    expected = reference_metrics(features, labels, weight, bias)
    worst = max(
        abs(result.metrics[key] - value) / max(abs(value), 1e-300)
        for key, value in expected.items()
        if key in REFERENCE_KEYS
    )
    peer_text = (
        ratio_text(times["peer"], times["floor"]) if "peer" in times else (f"not timed ({peer})")
    )
    print(
        f"C={num_classes:>5}: floor {min(times['floor']):.3f}s | engine "
        f"{ratio_text(times['engine'], times['floor'])}× (min / median) | peer float32 "
        f"{peer_text} | max rel. diff vs float64 reference {worst:.1e} "
        f"{'ok' if worst <= 1e-10 else 'FAIL'} | bare decision GEMM + Gram "
        f"{ratio_text(times['bare'], times['floor'])}×"
    )


MEMORY_CHILD = """
import resource, sys, time, torch
from ncviz.metrics import collapse_result
C, d, N = {c}, {d}, {n}
g = torch.Generator().manual_seed(0)
extra = torch.multinomial(1.0 / torch.arange(1, C + 1, dtype=torch.float64), N - 2 * C,
                          replacement=True, generator=g)
labels = torch.cat([torch.arange(C).repeat(2), extra])
means = torch.randn(C, d, generator=g)
features = torch.randn(N, d, generator=g)
for start in range(0, N, 8192):  # in place: no N×d temporaries while the data are made
    features[start : start + 8192] += means[labels[start : start + 8192]]
weight = means + 0.1 * torch.randn(C, d, generator=g)
bias = 0.1 * torch.randn(C, generator=g)
del means
inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
start = time.perf_counter()
result = collapse_result(features, labels, weight, bias, min_count=2)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
minority = len(result.minority_classes)
print(seconds, inputs, peak, len(result.metrics), minority, result.metrics["nc4"])
"""


def memory(num_classes: int, d: int, n: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD.format(c=num_classes, d=d, n=n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    seconds, inputs_gb, peak_gb = (float(v) for v in out[:3])
    print(
        f"memory C={num_classes} d={d} N={n}: end to end {seconds:.1f}s, {out[3]} metrics, "
        f"{out[4]} minority classes; peak RSS {peak_gb:.2f} GB (torch + inputs alone "
        f"{inputs_gb:.2f} GB; target < 2 GB)"
    )


def cli_seconds(cache: Path) -> float:
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    env = {**os.environ, "NCVIZ_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ncviz",
            "analyze",
            "checkpoints/digits-mlp",
            "--out",
            str(cache.parent / "out"),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


SPIN_ONE_CPU_SECOND = (
    "import time\nstart = time.process_time()\nwhile time.process_time() - start < 1.0: pass"
)


def spin_seconds() -> float:
    """Wall time of a process that needs exactly one second of one core: the fair-share control."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", SPIN_ONE_CPU_SECOND], check=True)
    return time.perf_counter() - start


def threads(repeats: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="ncviz-bench-threads-"))
    quiet, loaded = [], []
    spin_quiet, spin_loaded = [], []
    matrix = torch.randn(128, 128, dtype=torch.float64)
    matrix = matrix @ matrix.T
    eig_two, eig_one = [], []
    for _ in range(repeats):
        quiet.append(cli_seconds(scratch / "cache"))
        spin_quiet.append(spin_seconds())
        with busy(2):
            loaded.append(cli_seconds(scratch / "cache"))
            spin_loaded.append(spin_seconds())
            for _ in range(20):
                start = time.perf_counter()
                torch.linalg.eigvalsh(matrix)
                eig_two.append(time.perf_counter() - start)
                with single_threaded():
                    start = time.perf_counter()
                    torch.linalg.eigvalsh(matrix)
                    eig_one.append(time.perf_counter() - start)
    q, b = statistics.median(quiet), statistics.median(loaded)
    print(
        f"ncviz analyze checkpoints/digits-mlp, cold: idle {q:.1f}s (runs "
        f"{', '.join(f'{t:.1f}' for t in quiet)}), beside 2 busy processes {b:.1f}s (runs "
        f"{', '.join(f'{t:.1f}' for t in loaded)}) = {b / q:.2f}× (target ≤ 1.5)"
    )
    spin = statistics.median(spin_loaded) / statistics.median(spin_quiet)
    print(
        f"control, one core-second of pure spinning: idle {statistics.median(spin_quiet):.2f}s, "
        f"beside 2 busy processes {statistics.median(spin_loaded):.2f}s = {spin:.2f}× (the "
        "fair-share floor of single-threaded work on this machine)"
    )
    print(
        f"eigvalsh 128×128 beside 2 busy processes ({torch.get_num_threads()} threads): median "
        f"{statistics.median(eig_two) * 1e3:.1f} ms, max {max(eig_two) * 1e3:.1f} ms; one thread: "
        f"median {statistics.median(eig_one) * 1e3:.1f} ms, max {max(eig_one) * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--skip", default="", help="comma-separated: speed, memory, threads")
    parser.add_argument(
        "--load", type=int, default=0, help="also time the speed cases beside N busy processes"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "speed" not in skip:
        n, d, classes, repeats = (
            (5_000, 128, (10, 100), 3) if args.quick else (50_000, 512, (10, 100, 1000), 5)
        )
        for load in sorted({0, max(0, args.load)}):
            print(f"speed, {'idle' if load == 0 else f'{load} busy process(es)'}:")
            with busy(load):
                for num_classes in classes:
                    speed_case(n, d, num_classes, repeats)
    if "memory" not in skip:
        memory(*((2_000, 64, 10_000) if args.quick else (32_000, 512, 205_000)))
    if "threads" not in skip:
        threads(1 if args.quick else 3)


if __name__ == "__main__":
    main()
