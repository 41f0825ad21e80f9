"""Links that reopen a view: the run, checkpoint, layer and split in a URL's query, as W&B and
TensorBoard users share them (``/angles?run=digits-mlp-imbalanced&step=600&layer=fc:input``).

A checkpoint is written as ``step`` (its epoch or step number) when it has one, else by name
(``checkpoint``). Reading a link back keeps only what the analysis has; the rest is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LINK_KEYS = ("run", "step", "checkpoint", "layer", "split")


def view_query(
    run: str,
    checkpoint: str,
    epoch: int | None,
    layer: str,
    split: str | None = None,
) -> dict[str, str]:
    """The query of a view.

    >>> view_query("digits-mlp", "epoch_0600.safetensors", 600, "classifier:input")
    {'run': 'digits-mlp', 'step': '600', 'layer': 'classifier:input'}
    """
    query = {"run": run}
    if epoch is not None:
        query["step"] = str(epoch)
    else:
        query["checkpoint"] = checkpoint
    query["layer"] = layer
    if split:
        query["split"] = split
    return query


@dataclass(frozen=True)
class LinkedView:
    """What a link asks for, each None where the link is silent or names something absent."""

    checkpoint: str | None = None
    layer: str | None = None
    split: str | None = None


def resolve_view(
    query: Mapping[str, str],
    checkpoints: Sequence[str],
    epochs: Sequence[int | None],
    layers: Sequence[str],
    splits: Sequence[str] = (),
) -> LinkedView:
    """The checkpoint, layer and split a query names, among those of an analysis.

    >>> resolve_view({"step": "600", "layer": "fc:input"}, ["a", "b"], [0, 600], ["fc:input"])
    LinkedView(checkpoint='b', layer='fc:input', split=None)
    """
    checkpoint = query.get("checkpoint")
    if checkpoint not in checkpoints:
        checkpoint = None
        step = query.get("step")
        if step is not None and step.lstrip("-").isdigit():
            matches = [c for c, e in zip(checkpoints, epochs) if e == int(step)]
            checkpoint = matches[0] if matches else None
    layer = query.get("layer") if query.get("layer") in layers else None
    split = query.get("split") if query.get("split") in splits else None
    return LinkedView(checkpoint, layer, split)
