"""``ncviz convert --trust``: turn a pickled model, TorchScript or torch.package file into
safetensors, on the owner's own machine.

This is the only code path in ncviz that unpickles with code execution, and only when the caller
passes ``trust=True``; the dashboard never calls it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ncviz.errors import CheckpointError
from ncviz.load.checkpoints import _unwrap, save_safetensors, strip_prefixes


def _load_untrusted(path: Path) -> Any:
    names = zipfile.ZipFile(path).namelist() if zipfile.is_zipfile(path) else []
    if any(n.endswith("/constants.pkl") or "/code/__torch__" in n for n in names):
        return torch.jit.load(str(path), map_location="cpu")
    if any(n.endswith(".data/extern_modules") for n in names):
        from torch.package import PackageImporter

        importer = PackageImporter(str(path))
        pickles = [n.split("/", 1)[1] for n in names if n.endswith(".pkl") and "/.data/" not in n]
        if not pickles:
            raise CheckpointError(f"{path.name}: no pickled object found in the torch.package.")
        package, _, resource = pickles[0].rpartition("/")
        return importer.load_pickle(package.replace("/", "."), resource)
    return torch.load(path, map_location="cpu", weights_only=False)


def convert_checkpoint(
    path: str | Path, out: str | Path | None = None, *, trust: bool = False
) -> Path:
    """Load ``path`` with full unpickling (``trust`` required) and write its weights as
    ``.safetensors``, with the model's class name in the metadata."""
    path = Path(path)
    if not trust:
        raise CheckpointError(
            "converting runs the file's code when it is unpickled; do it only for files you "
            "trust, on your own machine, and pass --trust."
        )
    try:
        obj = _load_untrusted(path)
    except (ModuleNotFoundError, AttributeError) as error:
        raise CheckpointError(
            f"{path.name} refers to code that is not importable here ({error}); run convert "
            "where the model's own code is installed."
        ) from None
    architecture = ""
    if isinstance(obj, (nn.Module, torch.jit.ScriptModule)):
        architecture = type(obj).__name__
        obj = obj.state_dict()
    state, counters = _unwrap(obj, path.name)
    target = Path(out) if out else path.with_suffix(".safetensors")
    return save_safetensors(
        strip_prefixes(state),
        target,
        source=path.name,
        architecture=architecture or None,
        **{k: v for k, v in counters.items()},
    )
