"""The bundled long-tailed digits runs side by side: does NCMC's head help the tail?

    python benchmarks/ncmc_longtail.py [checkpoints]

For each of ``digits-longtail-learned`` (cross-entropy, learned head), ``-etf`` (cross-entropy,
head fixed to a simplex ETF) and ``-ncmc`` (head fixed to the ETF's class directions, NCMC's
Cosine Loss to class-aware fixed centres), at the last checkpoint on the balanced digits test
split: accuracy, tail recall (mean recall of the classes with fewer than half the largest
class's training images) and head recall; at the classifier input on the long-tailed training
split: NCMC's collapse to each class's centre-mean (``ncmc_*``, runs with centres only) and the
k-means sub-cluster view (``subcluster_*``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ncviz.analysis import analyze, multicentre_at, ncmc_at, origin_of
from ncviz.load import load_dataset

LAYER = "classifier:input"
HEADS = ("learned", "etf", "ncmc")


def measure(folder: Path) -> dict[str, float]:
    analysis = analyze(folder, layers=[LAYER], cache=False)
    last = analysis.checkpoints[-1]
    net, _ = origin_of(analysis).trained_model(last)
    test = load_dataset("builtin:digits?split=test")
    train = load_dataset("builtin:digits?imbalance=longtail:20")
    counts = np.bincount(train.labels.numpy(), minlength=train.num_classes)
    tail = counts < counts.max() / 2
    net.eval()
    with torch.no_grad():
        predicted = net(test.inputs).argmax(dim=1).numpy()
    labels = test.labels.numpy()
    recall = np.array([(predicted[labels == c] == c).mean() for c in range(len(counts))])
    row = {
        "test_acc": float((predicted == labels).mean()),
        "tail_recall": float(recall[tail].mean()),
        "head_recall": float(recall[~tail].mean()),
    }
    if origin_of(analysis).has_given_centres():
        row.update(ncmc_at(analysis, last, LAYER).metrics)
    row.update(multicentre_at(analysis, last, LAYER).metrics)
    return row


def main(root: str = "checkpoints") -> None:
    for head in HEADS:
        row = measure(Path(root) / f"digits-longtail-{head}")
        print(f"{head:8s} " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()))


if __name__ == "__main__":
    main(*sys.argv[1:2])
