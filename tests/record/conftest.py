"""A held-out custom architecture (module names no registry knows) trained briefly on digits.

Model and data are float64, so that features computed batch by batch equal features computed in
one pass to ~1e-16 on any machine (float32 GEMMs may block differently per batch size and thread
count), and the tests can pin the statistics to 1e-9."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ncviz.load import load_dataset


class OddNet(nn.Module):
    """Conv stem + 'neck' + 'tail' head: names and structure unlike any built-in model."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.neck = nn.ModuleDict({"squeeze": nn.Linear(6 * 8 * 8, 32), "act": nn.GELU()})
        self.penult = nn.Linear(32, 24)
        self.tail = nn.Linear(24, 10)
        self.double()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        h = self.stem(pixels.reshape(-1, 1, 8, 8)).flatten(1)
        h = self.neck["act"](self.neck["squeeze"](h))
        return self.tail(torch.relu(self.penult(h)))


@pytest.fixture(scope="session")
def digits():
    data = load_dataset("builtin:digits?per_class=60")
    return data.inputs.double(), data.labels


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for start in range(0, len(x), 50):
        index = order[start : start + 50]
        loss = nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
