"""Sweeps over a setting of a theory model (λ, width, depth, …) and over seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ncviz.cache import CacheStore, cache_key
from ncviz.errors import OptionError
from ncviz.theory.deep_ufm import DeepUFMSettings, train_deep_ufm

ProgressFn = Callable[[int, int, str], None]


def sweep(
    base: DeepUFMSettings,
    parameter: str,
    values: Sequence[Any],
    seeds: Sequence[int] = (0, 1, 2),
    progress: ProgressFn | None = None,
    cache: bool = True,
) -> pd.DataFrame:
    """Train the deep UFM for every value × seed; one row per run with the final loss, the DNC
    reference, the minimal intermediate rank and whether the run reached DNC (every layer of
    rank K and loss within 1e-3 of the DNC reference). Finished sweeps are kept as Parquet under
    ``<cache root>/sweeps`` and returned from there when asked again."""
    if parameter not in {f.name for f in dataclasses.fields(base)}:
        raise OptionError(f"unknown setting {parameter!r} to sweep over.")
    key = cache_key(
        kind="dufm-sweep",
        base=dataclasses.asdict(base),
        parameter=parameter,
        values=list(values),
        seeds=list(seeds),
    )
    store = CacheStore()
    path = store.folder("sweeps") / f"{key}.parquet"
    if cache and path.is_file():
        store.touch(path)
        return pd.read_parquet(path)
    rows = []
    total = len(values) * len(seeds)
    for index, (value, seed) in enumerate((v, s) for v in values for s in seeds):
        settings = dataclasses.replace(base, **{parameter: value, "seed": seed})
        result = train_deep_ufm(settings)
        ranks = result.final_ranks()
        intermediate = ranks[:-1]
        rows.append(
            {
                parameter: value,
                "seed": seed,
                "loss": result.loss[-1],
                "dnc_reference": result.dnc_reference,
                "min_rank": min(intermediate),
                "last_rank": ranks[-1],
                "reached_dnc": all(r == settings.num_classes for r in ranks)
                and result.loss[-1] <= result.dnc_reference + 1e-3,
            }
        )
        if progress is not None:
            progress(index + 1, total, f"{parameter}={value}, seed {seed}")
    table = pd.DataFrame(rows)
    if cache:
        with store.atomic(path, suffix=".parquet") as handle:
            table.to_parquet(handle, index=False)
    return table


def sweep_summary(table: pd.DataFrame, parameter: str) -> pd.DataFrame:
    """Per value of the swept setting, over seeds: the mean minimal intermediate rank and the
    share of runs that reached deep neural collapse.

    >>> table = pd.DataFrame({"width": [8, 8, 16], "min_rank": [3, 5, 10],
    ...                       "reached_dnc": [False, True, True]})
    >>> sweep_summary(table, "width").to_dict("index")
    {8: {'min_rank': 4.0, 'share_dnc': 0.5}, 16: {'min_rank': 10.0, 'share_dnc': 1.0}}
    """
    return table.groupby(parameter).agg(
        min_rank=("min_rank", "mean"), share_dnc=("reached_dnc", "mean")
    )
