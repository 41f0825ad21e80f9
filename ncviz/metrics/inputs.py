"""Turn user arrays (numpy, torch, lists) into validated float64/int64 tensors.

Every check here raises :class:`ncviz.errors.InputError` with a one-line message that names the
problem and the fix, so callers never see a shape error from deep inside torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ncviz.errors import InputError

ArrayLike = Any  # numpy array, torch tensor, or nested sequence


def as_tensor(
    values: ArrayLike, name: str, device: torch.device | str | None = None
) -> torch.Tensor:
    """Return ``values`` as a torch tensor (no copy for tensors and numeric numpy arrays)."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach()
    else:
        array = np.asarray(values)
        if array.dtype == object:
            raise InputError(f"{name} must be a numeric array, got objects of mixed type.")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device is not None:
        tensor = tensor.to(device)
    return tensor


def features_matrix(
    values: ArrayLike,
    name: str = "features",
    dim: int | None = None,
    device: torch.device | str | None = None,
    check_finite: bool = True,
    keep_dtype: bool = False,
) -> torch.Tensor:
    """Validate an N×d float matrix and return it upcast to float64 on ``device``.

    ``check_finite=False`` leaves the NaN/Inf check to the caller (see :func:`require_finite`).
    ``keep_dtype=True`` returns floating-point input in its own dtype (no copy): streaming
    statistics upcast one chunk at a time instead of the whole array. Integers become float64.
    """
    tensor = as_tensor(values, name, device)
    if tensor.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D array of shape (N, d), got shape {tuple(tensor.shape)}; "
            "flatten or pool each sample's activations first."
        )
    if not (tensor.dtype.is_floating_point or tensor.dtype in _INTEGER_DTYPES):
        raise InputError(f"{name} must hold numbers, got dtype {tensor.dtype}.")
    if tensor.shape[0] == 0:
        raise InputError(f"{name} is empty (0 samples); pass at least two samples per class.")
    if dim is not None and tensor.shape[1] != dim:
        raise InputError(
            f"{name} have dimension {tensor.shape[1]} but {dim} was expected; "
            "use features of the same layer throughout."
        )
    if not (keep_dtype and tensor.dtype.is_floating_point):
        tensor = tensor.to(torch.float64)
    if check_finite:
        require_finite(tensor, torch.isfinite(tensor).all(), name)
    return tensor


def require_finite(
    tensor: torch.Tensor, finite: torch.Tensor | bool, name: str = "features"
) -> None:
    """Raise if ``finite`` (a cheap summary, e.g. isfinite of per-row sums) is False.

    Streaming updates pass a reduction they compute anyway, so the common case costs nothing;
    only a failing batch pays for counting its bad rows.
    """
    if bool(finite):
        return
    bad_rows = int((~torch.isfinite(tensor)).any(dim=1).sum())
    if bad_rows == 0:  # every value is finite: a sum or square of them overflowed
        largest = float(tensor.abs().max())
        raise InputError(
            f"{name} are finite but too large (|value| up to {largest:.3g}): their sums overflow "
            "float64; rescale them (e.g. divide by their largest value)."
        )
    raise InputError(
        f"{name} contain NaN or Inf in {bad_rows} of {tensor.shape[0]} samples; "
        "check the model for overflow (e.g. use float32 instead of float16) or drop those rows."
    )


_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


@dataclass(frozen=True)
class EncodedLabels:
    """Labels mapped to class indices 0..C-1; ``classes[k]`` is the original label of class k."""

    codes: torch.Tensor
    classes: np.ndarray


def encode_labels(values: ArrayLike, num_samples: int) -> EncodedLabels:
    """Map arbitrary labels (ints with gaps, strings) to 0..C-1 in sorted order of the labels."""
    if isinstance(values, torch.Tensor):
        array = values.detach().cpu().numpy()
    else:
        array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(
            f"labels must be a 1-D array of N class labels, got shape {array.shape}; "
            "for vector targets use regression_metrics."
        )
    if array.shape[0] != num_samples:
        raise InputError(
            f"labels have {array.shape[0]} entries but features have {num_samples} rows; "
            "pass one label per feature row."
        )
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise InputError(
                "labels are non-integer floats; pass class labels (ints or strings), "
                "or use regression_metrics for continuous targets."
            )
        array = array.astype(np.int64)
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    if array.dtype.kind not in "iuUSO":
        raise InputError(f"labels must be integers or strings, got dtype {array.dtype}.")
    classes, codes = np.unique(array, return_inverse=True)
    return EncodedLabels(codes=torch.from_numpy(codes.astype(np.int64)), classes=classes)


def class_indices(
    values: ArrayLike, num_samples: int, num_classes: int, device: torch.device
) -> torch.Tensor:
    """Validate streaming labels that must already be integer class indices in 0..C-1."""
    tensor = as_tensor(values, "labels", device)
    if tensor.ndim == 2 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.ndim != 1:
        raise InputError(f"labels must be 1-D, got shape {tuple(tensor.shape)}.")
    if tensor.shape[0] != num_samples:
        raise InputError(
            f"labels have {tensor.shape[0]} entries but features have {num_samples} rows; "
            "pass one label per feature row."
        )
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise InputError(
            "streaming labels must be integer class indices 0..C-1; "
            "map other labels first (collapse_metrics does this for you)."
        )
    tensor = tensor.to(torch.int64)
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= num_classes):
        raise InputError(
            f"labels must lie in 0..{num_classes - 1} for num_classes={num_classes}, "
            f"got values from {int(tensor.min())} to {int(tensor.max())}; "
            "raise num_classes or map the labels first."
        )
    return tensor
