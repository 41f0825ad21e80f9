"""Before the statistics are allocated: the memory the passes will need against the memory this
process may still use, so an analysis that cannot fit is refused in one line naming the fix
instead of dying at the budget minutes later.

What the passes hold beyond the batch in flight, per layer of dimension d over C classes:

* statistics: the d × d float64 scatter and the C × d float64 class sums of every layer —
  ``8·(d² + C·d)`` bytes each, held through both passes — and, for the widest layer, its scatter
  and twice its class rows again while it is finalised (means, scores; one layer at a time);
* kept features (regression, ``keep_features``): every row of pass 1, ``N·d`` float32;
* the embedding sample: ``sample_size·d`` float32;
* where it is known before the first batch runs (the extractor probes two samples), one batch of
  every chosen layer's raw output.

The limit is the worker's ``RLIMIT_DATA`` less what the process already uses, and in any process
the machine's available memory (``MemAvailable``).
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass

from ncviz.errors import OptionError

GIB = 2**30


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes the passes will allocate beyond the batch in flight, by what they hold."""

    statistics: int
    kept_features: int
    sample: int
    widest: tuple[str, int]  # the layer with the largest statistics, and its dimension
    activations: int = 0  # one batch of raw layer outputs, when not yet allocated
    batch_size: int = 0

    @property
    def total(self) -> int:
        return self.statistics + self.kept_features + self.sample + self.activations


def passes_need(
    dims: Mapping[str, int],
    num_classes: int,
    *,
    num_rows: int = 0,
    keep_features: bool = False,
    sample_size: int = 0,
    batch_bytes: int = 0,
    batch_size: int = 0,
) -> MemoryNeed:
    """What the passes need for layers of ``dims`` (name → d), C = ``num_classes``.

    >>> need = passes_need({"fc": 4096}, 10)
    >>> round(need.statistics / 2**20)  # a 4096² float64 scatter, once more to finalise it
    257
    """
    statistics = sum(8 * (d * d + num_classes * d) for d in dims.values())
    widest = max(dims.values(), default=0)  # finalised one layer at a time
    statistics += 8 * (widest * widest + 2 * num_classes * widest)
    width = sum(dims.values())
    return MemoryNeed(
        statistics=statistics,
        kept_features=4 * num_rows * width if keep_features else 0,
        sample=4 * sample_size * width,
        widest=max(dims.items(), key=lambda item: item[1], default=("", 0)),
        activations=batch_bytes,
        batch_size=batch_size,
    )


def data_in_use() -> int:
    """This process's private writable memory (VmData), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _available() -> int | None:
    """The machine's available memory (``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_headroom() -> int | None:
    """Bytes this process may still allocate: its ``RLIMIT_DATA`` (a budgeted worker's) less
    what it uses, and at most the machine's available memory; None where neither is known."""
    limits = []
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if soft != resource.RLIM_INFINITY:
        limits.append(max(0, soft - data_in_use()))
    available = _available()
    if available is not None:
        limits.append(available)
    return min(limits) if limits else None


def check_fits(need: MemoryNeed, headroom: int | None = None) -> None:
    """Raise a one-line :class:`OptionError` when ``need`` exceeds ``headroom`` (default:
    :func:`memory_headroom`), naming the largest part and how to shrink it."""
    headroom = memory_headroom() if headroom is None else headroom
    if headroom is None or need.total <= headroom:
        return
    parts = [
        (need.statistics, "statistics", f"widest layer {need.widest[0]!r}: d = {need.widest[1]:,}"),
        (need.kept_features, "kept features", "every row of every layer"),
        (need.sample, "embedding sample", "rows kept per layer"),
        (need.activations, "layer outputs", f"a batch of {need.batch_size:,} inputs"),
    ]
    size, name, detail = max(parts)
    fixes = {
        "statistics": "analyse fewer or narrower layers (pool='avg' for feature maps)",
        "kept features": "analyse fewer samples or layers",
        "embedding sample": "keep a smaller sample",
        "layer outputs": f"lower the batch size (now {need.batch_size:,}) or analyse fewer layers",
    }
    raise OptionError(
        f"this analysis needs about {_size(need.total)} ({name} {_size(size)}, {detail}) but "
        f"{_size(headroom)} is free for it; {fixes[name]}."
    )


def _size(count: int) -> str:
    """Bytes as GB with one decimal, or as whole MB below 1 GB (so 0.14 and 0.09 GB differ)."""
    return f"{count / GIB:.1f} GB" if count >= GIB else f"{count / 2**20:.0f} MB"
