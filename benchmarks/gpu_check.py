"""Recorder on a CUDA model: same metrics as on the CPU, model left where it was, autocast runs.

Run by hand on a GPU host: ``python benchmarks/gpu_check.py``. Prints each check with its
measured difference; exits non-zero when one fails.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from record_custom_model import DigitNet, digits_loaders

import ncviz
from ncviz.analysis import analyze

KEYS = ("nc1", "nc2_etf_distance", "nc3", "nc4", "cdnv", "accuracy")


def record(model: torch.nn.Module, loader, folder: Path, **kwargs) -> dict[str, float]:
    rec = ncviz.Recorder(folder, layers=["neck"], classifier="logits", **kwargs)
    rec.capture(model, loader, step=0)
    return analyze(folder).metrics_at("step 0", "logits:input")


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    torch.manual_seed(0)
    model = DigitNet()
    train, record_train, _ = digits_loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(8):
        for images, labels in train:
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    folder = Path(tempfile.mkdtemp())
    cpu = record(copy.deepcopy(model).train(), record_train, folder / "cpu")
    gpu_model = copy.deepcopy(model).cuda().train()
    gpu = record(gpu_model, record_train, folder / "gpu")
    failures = 0
    worst = max(abs(gpu[k] - cpu[k]) / max(abs(cpu[k]), 1e-12) for k in KEYS)
    ok = worst < 1e-4
    failures += not ok
    print(f"CUDA vs CPU metrics, max relative difference {worst:.2e} (< 1e-4): {ok}")
    on_gpu = all(p.device.type == "cuda" for p in gpu_model.parameters()) and gpu_model.training
    failures += not on_gpu
    print(f"model still on CUDA and in train mode after capture: {on_gpu}")
    amp = record(gpu_model, record_train, folder / "amp", autocast=True)
    worst = max(abs(amp[k] - cpu[k]) / max(abs(cpu[k]), 1e-12) for k in ("nc1", "accuracy"))
    print(
        f"autocast (bf16/fp16) vs fp32: nc1 {amp['nc1']:.4f} vs {cpu['nc1']:.4f}, "
        f"max relative difference {worst:.2e}"
    )
    print("all checks passed" if failures == 0 else f"{failures} check(s) failed")
    return int(failures > 0)


if __name__ == "__main__":
    raise SystemExit(main())
