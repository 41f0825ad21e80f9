"""The metric engine on a CUDA device: same answers as the CPU, and its cost against the floor.

1. ``collapse_result`` on CUDA float32 features equals the CPU result (every key of the
   reference set to 1e-10; nc4 and accuracy exactly), with TF32 matmuls allowed and not — the
   decision bound widens for TF32 so the float64 re-check still decides near ties.
2. Constructed near ties between class centres are decided as in float64 on the GPU.
3. Time of the whole ``collapse_result`` vs one float64 XᵀX on the GPU (the floor), C = 10,
   100, 1000, N = 200,000, d = 512, min of 5, interleaved.

Run by hand on a GPU host: ``python benchmarks/engine_gpu.py``; exits non-zero when a check fails.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from ncviz.metrics import collapse_result
from ncviz.metrics.decisions import AffineDecisions

KEYS = ("nc1", "nc1_trace_ratio", "cdnv", "nc2_etf_distance", "nc3", "gnc2_log_mean")


def data(n: int, d: int, num_classes: int, device: str):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(num_classes, d, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    features = means[labels] + torch.randn(n, d, generator=g)
    weight = means + 0.1 * torch.randn(num_classes, d, generator=g)
    bias = 0.1 * torch.randn(num_classes, generator=g)
    return [t.to(device) for t in (features, labels, weight, bias)]


def synced(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def timing(num_classes: int) -> None:
    features, labels, weight, bias = data(200_000, 512, num_classes, "cuda")
    x64 = features.double()
    floor, engine = [], []
    for _ in range(5):
        floor.append(synced(lambda: x64.T @ x64))
        engine.append(synced(lambda: collapse_result(features, labels, weight, bias)))
    ratio = min(engine) / min(floor)
    print(
        f"C={num_classes:>5}: floor {min(floor) * 1e3:.1f} ms, engine "
        f"{min(engine) * 1e3:.1f} ms = {ratio:.2f}× the floor"
    )


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    failures = 0
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    cpu = collapse_result(*data(20_000, 256, 100, "cpu")).metrics
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        gpu = collapse_result(*data(20_000, 256, 100, "cuda")).metrics
        worst = max(abs(gpu[k] - cpu[k]) / abs(cpu[k]) for k in KEYS if k in cpu)
        exact = gpu["nc4"] == cpu["nc4"] and gpu["accuracy"] == cpu["accuracy"]
        ok = worst <= 1e-10 and exact
        failures += not ok
        print(
            f"CUDA vs CPU (allow_tf32={tf32}): max rel. diff {worst:.1e}, nc4/accuracy "
            f"{'equal' if exact else 'DIFFER'} — {'ok' if ok else 'FAIL'}"
        )
    torch.backends.cuda.matmul.allow_tf32 = False

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, 64))
    i = rng.integers(0, 200, 5000)
    j = (i + 1 + rng.integers(0, 199, 5000)) % 200
    gap = 1e-9 * rng.choice([-1.0, 1.0], size=(5000, 1))
    points = (centres[i] + centres[j]) / 2 + gap * (centres[j] - centres[i])
    expected = ((points[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    c = torch.from_numpy(centres).cuda()
    decider = AffineDecisions([(c, -(c * c).sum(dim=1), 2.0)], c.mean(dim=0))
    got = decider.decide(torch.from_numpy(points).cuda())[0].cpu().numpy()
    wrong = int((got != expected).sum())
    failures += wrong > 0
    verdict = "ok" if not wrong else "FAIL"
    print(
        f"near ties on CUDA: {wrong} of 5000 differ from float64 "
        f"({decider.rows_needing_float64} re-checked) — {verdict}"
    )

    for num_classes in (10, 100, 1000):
        timing(num_classes)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
