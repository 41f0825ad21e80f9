"""Record neural collapse from your own training loop — a custom CNN on scikit-learn's digits.

The model below has module names no built-in architecture knows (``features.conv_a``, ``neck``,
``logits``); ncviz never needs its class. Three lines of :class:`ncviz.Recorder` in the loop write
a run folder that ``ncviz analyze`` and the dashboard open like a bundled run::

    python examples/record_custom_model.py --out runs/custom-cnn --epochs 30
    ncviz analyze runs/custom-cnn
    (cd runs && zip -r custom-cnn.zip custom-cnn)   # then upload the zip on the Source page
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ncviz


class DigitNet(nn.Module):
    """A small CNN with its own naming: conv features → 'neck' MLP → 'logits'."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv_a", nn.Conv2d(1, 8, 3, padding=1))
        self.features.add_module("act_a", nn.ReLU())
        self.features.add_module("conv_b", nn.Conv2d(8, 16, 3, padding=1, stride=2))
        self.features.add_module("act_b", nn.ReLU())
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU())
        self.logits = nn.Linear(64, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.neck(self.features(images)))


def digits_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train loader (shuffled), and train/test loaders for recording (no augmentation)."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(digits.target)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(labels), generator=generator)
    train, test = order[:1400], order[1400:]
    train_set = TensorDataset(images[train], labels[train])
    test_set = TensorDataset(images[test], labels[test])
    return (
        DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(train_set, batch_size=512),
        DataLoader(test_set, batch_size=512),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/custom-cnn", help="run folder to write")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = DigitNet()
    train_loader, record_train, record_test = digits_loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    milestone = max(1, 2 * args.epochs // 3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [milestone], gamma=0.1)
    steps = sorted({0, 1, 2, *range(0, args.epochs, max(1, args.epochs // 8)), args.epochs - 1})

    rec = ncviz.Recorder(
        args.out,
        layers=["features.conv_b", "neck"],  # the classifier input, logits:input, is added
        classifier="logits",
        notes="examples/record_custom_model.py: DigitNet on sklearn digits",
    )
    for epoch in range(args.epochs):
        model.train()
        correct = total = 0
        for images, labels in train_loader:
            output = model(images)
            loss = nn.functional.cross_entropy(output, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((output.argmax(1) == labels).sum())
            total += len(labels)
        scheduler.step()
        rec.log(epoch, loss=loss.item(), train_acc=correct / total)
        if epoch + 1 == milestone:
            rec.event(epoch, "lr ÷10")
        if epoch in steps:
            summary = rec.capture(model, record_train, step=epoch)
            rec.capture(model, record_test, step=epoch, split="test")
            nc1 = summary["logits:input"]["nc1"]
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}  nc1 {nc1:.4f}", flush=True)
    rec.close()
    print(f"recorded {args.out}: ncviz analyze {args.out}")


if __name__ == "__main__":
    main()
