"""ONNX Runtime extraction vs torch hooks on the same custom model, measured in one process.

Both feed the same two-pass statistics (``capture_outputs``/``capture``): a small CNN (conv stem,
linear body, linear head) exported with ``torch.onnx.export(dynamo=True, optimize=False)``, on
4,096 random 1×32×32 images, layers: the conv stem and the classifier input.

Run by hand: ``.venv/bin/python benchmarks/onnx_extraction.py``.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import torch
from timing import best_of
from torch import nn

from ncviz.extract.loader import capture, capture_outputs
from ncviz.load.onnx import OnnxRunner, read_onnx


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16 * 16, 256), nn.ReLU())
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)))


def main() -> None:
    torch.manual_seed(0)
    model = Net().eval()
    x, y = torch.randn(4096, 1, 32, 32), torch.arange(4096) % 10
    batches = [(x[k : k + 256], y[k : k + 256]) for k in range(0, 4096, 256)]
    path = Path(tempfile.mkdtemp()) / "net.onnx"
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x[:2],),
            str(path),
            dynamo=True,
            optimize=False,
            dynamic_shapes=({0: "batch"},),
            verbose=False,
        )
    graph = read_onnx(path)
    layers = ["stem", "head:input"]
    runner = OnnxRunner(graph, layers)
    head = ("head", model.head)

    def onnx_run():
        return capture_outputs(runner, batches, layers, classifier=head, sample_size=0)

    def torch_run():
        return capture(model, batches, layers, classifier=head, sample_size=0)

    onnx_run(), torch_run()  # warm-up
    t_onnx, t_torch = best_of(onnx_run), best_of(torch_run)
    a = onnx_run().layers["head:input"].statistics.compute().metrics["nc1"]
    b = torch_run().layers["head:input"].statistics.compute().metrics["nc1"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, N = 4096")
    print(f"torch hooks   {t_torch:6.3f} s")
    print(f"onnxruntime   {t_onnx:6.3f} s  = {t_onnx / t_torch:4.2f}× torch hooks")
    print(f"nc1 at head:input: onnx {a:.9f}  torch {b:.9f}  (relative {abs(a - b) / b:.1e})")


if __name__ == "__main__":
    main()
