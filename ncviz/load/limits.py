"""Sizes declared by untrusted files and specs, checked before anything is allocated.

A 4 MB ``.npz`` can declare a 4 GiB array, a 1 KB model spec a 6 GB model. Each reader asks here
first and refuses with the declared figure and the limit:

* data arrays: ``NCVIZ_MAX_DATA_GB`` (default 2 GiB, counted as float32 or wider);
* model parameters: ``NCVIZ_MAX_PARAMS`` (default 500 million), counted on PyTorch's ``meta``
  device, where building a model allocates nothing.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ncviz.errors import DataError, OptionError

DEFAULT_MAX_DATA_GB = 2.0
DEFAULT_MAX_PARAMS = 500_000_000


def max_data_bytes() -> int:
    return int(float(os.environ.get("NCVIZ_MAX_DATA_GB", DEFAULT_MAX_DATA_GB)) * 2**30)


def max_params() -> int:
    return int(float(os.environ.get("NCVIZ_MAX_PARAMS", DEFAULT_MAX_PARAMS)))


def npz_declared_bytes(path: Path) -> int:
    """Bytes the arrays of an ``.npz`` take once loaded (each at least float32), read from the
    ``.npy`` headers inside the archive without decompressing any data."""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                total += int(np.prod(shape, dtype=np.float64)) * max(dtype.itemsize, 4)
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise DataError(f"{path.name} is not a readable .npz archive ({error}).") from None
    return total


def safetensors_declared_bytes(path: Path) -> int:
    """Bytes of every tensor of a ``.safetensors`` file (each at least float32), from its header."""
    from safetensors import safe_open

    total = 0
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                shape = handle.get_slice(key).get_shape()
                total += int(np.prod(shape, dtype=np.float64)) * 8
    except Exception as error:
        raise DataError(
            f"{path.name} is not a readable .safetensors file ({str(error)[:80]})."
        ) from None
    return total


def check_data_file(path: Path) -> None:
    """Refuse a data or features file whose arrays would exceed the data limit once loaded."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        declared = npz_declared_bytes(path)
    elif suffix == ".safetensors":
        declared = safetensors_declared_bytes(path) // 2  # counted as float32, not float64
    else:
        declared = path.stat().st_size
    limit = max_data_bytes()
    if declared > limit:
        raise DataError(
            f"{path.name} declares {declared / 2**30:.1f} GiB of arrays once loaded; the limit "
            f"is {limit / 2**30:.1f} GiB (NCVIZ_MAX_DATA_GB) — subsample or split the data."
        )


def check_model_size(name: str, build: Callable[[], nn.Module]) -> None:
    """Build the model on the ``meta`` device (no memory) and refuse one with too many
    parameters; exceptions while building are left for the real build to report."""
    try:
        with torch.device("meta"):
            model = build()
    except Exception:
        return
    count = sum(p.numel() for p in model.parameters())
    limit = max_params()
    if count > limit:
        raise OptionError(
            f"model {name!r} would have {count / 1e6:,.0f} million parameters; the limit is "
            f"{limit / 1e6:,.0f} million (NCVIZ_MAX_PARAMS) — check the architecture arguments."
        )
