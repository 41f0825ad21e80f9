"""Features extracted elsewhere: ``.safetensors`` or ``.npz`` with ``features.<layer>`` (N×d),
``labels`` (N) or ``targets`` (N×n), and optionally ``classifier.weight`` / ``classifier.bias``,
``groups`` (N: an environment or domain per sample, for per-group metrics) and ``ood.<layer>``
(M×d: features of out-of-distribution data at that layer, for ``nc5``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ncviz.errors import DataError
from ncviz.load.limits import check_data_file
from ncviz.load.runs import checkpoint_sort_key

FEATURE_PREFIX = "features."
OOD_PREFIX = "ood."
FEATURE_SUFFIXES = (".npz", ".safetensors")


@dataclass
class FeaturesFile:
    layers: dict[str, torch.Tensor]
    labels: np.ndarray | None
    targets: torch.Tensor | None
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    name: str
    groups: np.ndarray | None = None
    ood: dict[str, torch.Tensor] | None = None  # OOD features per layer (nc5)


def is_features_file(path: str | Path) -> bool:
    """True for a .safetensors/.npz file with ``features.<layer>`` arrays *and* ``labels`` or
    ``targets`` (a model state dict with a ``features`` module has the first but not the second)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = set(archive.files)
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                keys = set(handle.keys())
        else:
            return False
    except Exception:  # unreadable files are not features files; the loader reports them
        return False
    has_features = any(k.startswith(FEATURE_PREFIX) for k in keys)
    return has_features and bool(keys & {"labels", "targets"})


def features_file_step(path: str | Path) -> int | None:
    """The step of a features file in a run: from its name (``feats_epoch_010.npz`` → 10), else
    from ``step``/``epoch`` in a safetensors file's metadata."""
    number = checkpoint_sort_key(Path(path))[0]
    return None if number == float("inf") else int(number)


def features_folder(folder: str | Path) -> list[Path]:
    """The features files of a folder that holds only features files (a run of them, ordered by
    step), else an empty list."""
    if (Path(folder) / "run.json").is_file():
        return []  # a run of checkpoints (or a recorded run)
    files = sorted(
        (p for p in Path(folder).iterdir() if p.is_file() and p.suffix in FEATURE_SUFFIXES),
        key=checkpoint_sort_key,
    )
    if files and all(is_features_file(f) for f in files):
        return files
    return []


def read_features_file(path: str | Path) -> FeaturesFile:
    path = Path(path)
    if path.suffix in FEATURE_SUFFIXES:
        check_data_file(path)
    try:
        groups = None
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                raw = {k: archive[k] for k in archive.files}
            groups = raw.pop("groups", None)  # may be text, which torch cannot hold
            arrays = {k: torch.from_numpy(v) for k, v in raw.items()}
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            arrays = load_file(str(path))
            if "groups" in arrays:
                groups = arrays.pop("groups").numpy()
        else:
            raise DataError(f"{path.name}: features files are .safetensors or .npz.")
    except DataError:
        raise
    except Exception as error:
        raise DataError(
            f"{path.name} is not a readable features file ({str(error)[:100]})."
        ) from None
    layers = {
        k[len(FEATURE_PREFIX) :]: v for k, v in arrays.items() if k.startswith(FEATURE_PREFIX)
    }
    if not layers:
        raise DataError(
            f"{path.name} has no `features.<layer>` arrays "
            f"(found: {', '.join(sorted(arrays))[:120]})."
        )
    sizes = {name: len(v) for name, v in layers.items()}
    labels = arrays.get("labels")
    targets = arrays.get("targets")
    if labels is None and targets is None:
        raise DataError(f"{path.name} needs `labels` (N) or `targets` (N×n) beside the features.")
    n = len(labels) if labels is not None else len(targets)  # type: ignore[arg-type]
    wrong = {k: v for k, v in sizes.items() if v != n}
    if wrong:
        raise DataError(
            f"{path.name}: layers {sorted(wrong)[:4]} have a different N than the labels ({n})."
        )
    if groups is not None and (groups.ndim != 1 or len(groups) != n):
        raise DataError(f"{path.name}: `groups` must hold one group per sample ({n}).")
    for name, tensor in layers.items():
        if tensor.ndim != 2:
            layers[name] = tensor.reshape(len(tensor), -1)
    ood = {k[len(OOD_PREFIX) :]: v for k, v in arrays.items() if k.startswith(OOD_PREFIX)}
    unknown = sorted(set(ood) - set(layers))
    if unknown:
        raise DataError(
            f"{path.name}: ood.{unknown[0]} has no features.{unknown[0]} beside it; OOD "
            "features are compared with the in-distribution features of the same layer."
        )
    for name, tensor in ood.items():
        ood[name] = tensor.reshape(len(tensor), -1)
        if ood[name].shape[1] != layers[name].shape[1]:
            raise DataError(
                f"{path.name}: ood.{name} has dimension {ood[name].shape[1]} but "
                f"features.{name} {layers[name].shape[1]}; give OOD features of the same layer."
            )
    weight, bias = arrays.get("classifier.weight"), arrays.get("classifier.bias")
    if weight is not None and weight.ndim != 2:
        raise DataError(f"{path.name}: classifier.weight must be a matrix (classes × features).")
    if bias is not None and bias.ndim != 1:
        raise DataError(f"{path.name}: classifier.bias must be a vector (one per class).")
    return FeaturesFile(
        layers=layers,
        labels=None if labels is None else labels.numpy(),
        targets=None if targets is None else (targets[:, None] if targets.ndim == 1 else targets),
        weight=weight,
        bias=bias,
        name=path.name,
        groups=groups,
        ood=ood or None,
    )
