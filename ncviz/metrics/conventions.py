"""Conventions: whose definitions the metrics follow, as named presets of the options.

The collapse literature measures the same phenomena with different normalisations, centrings and
row names. A :class:`Convention` bundles one paper's choices — the metric options it sets and the
rows it reports under that paper's own names — so that ncviz gives the numbers the authors' code
gives on the same features. ``ncviz`` (the default) reports every ncviz row under the defaults
of docs/metrics.md; the others:

* ``papyan2020`` — Papyan, Han & Donoho (2020): μ_G the mean of all samples; NC1–NC4 rows.
* ``lc2024`` — Linguistic Collapse (Wu & Papyan 2024, rhubarbwu/linguistic-collapse with the
  authors' ``neural_collapse`` library): every class seen at least once, CDNV with distance
  exponent 2, and the columns of their results table (``cdnv``, ``norms_*``, ``etf_error``,
  ``interfere_*``, ``log_kern_*``, ``dual_error``, ``simdot_*``, ``simcos_*``, ``dists_*``,
  ``hits``, ``misses``). Pair statistics are the mean and *population* variance over pairs
  i < j (their ``symm_reduce``); per-class statistics the mean and the unbiased variance
  (``torch.var``).
* ``rfm2024`` — Deep RFM (Beaglehole et al. 2024): ``nc1`` = tr Σ_W / tr Σ_B with their code's
  Σ_W = (1/(C·N)) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ and Σ_B = (1/C) Σ_c m_c m_cᵀ (the paper's
  text writes 1/N; the code divides by C·N, and the preset follows the code), ``nc2`` =
  mean over the C×C entries of (ÛÛᵀ − S)², Û the normalised centred means and S the simplex
  Gram (1 on the diagonal, −1/(C−1) off it).
* ``nrc2024`` — Neural Regression Collapse (Andriopoulos et al. 2024), for regression runs:
  the authors' ``nrc1`` (raw rows on the principal directions of the centred ones), ``nrc1n``,
  ``nrc1nc``, ``nrc2``, ``nrc2n``, ``nrc3`` with γ fixed at the final checkpoint's, ``evr1…``,
  ``nrc1_pca1…``, ``r2``, ``mse`` (:func:`ncviz.metrics.regression.nrc2024_result`).
* ``ncmc2024`` — Neural Collapse to Multiple Centers (Yan et al. 2024): accuracy overall and on
  minority/majority classes, and, for a run trained to fixed centres, each class's collapse to
  the mean of its centres (``ncmc_*``, :func:`ncviz.metrics.multicentre.ncmc_result`).
* ``dufm2024`` — deep unconstrained features (Súkeník et al. 2024): the rank of the *uncentred*
  class means (``rank_means_uncentred``) in place of the centred one; other rows as ncviz's.

>>> [c.name for c in CONVENTIONS.values()]
['ncviz', 'papyan2020', 'lc2024', 'rfm2024', 'nrc2024', 'ncmc2024', 'dufm2024']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from ncviz.errors import InputError, OptionError
from ncviz.metrics.moments import mean_and_variance

DEFAULT_CONVENTION = "ncviz"


@dataclass(frozen=True)
class ConventionInputs:
    """What a convention's rows are computed from (the kept classes only, float64).

    ``means`` μ_c (C×d), ``centred`` m_c = μ_c − μ_G under the convention's global mean,
    ``counts`` n_c, ``within_trace`` Σ_i ‖h_i − μ_{y_i}‖², ``weight`` the classifier row of each
    class (C×d) or None, ``agreement`` the samples on which the classifier and the nearest class
    centre decide alike (None without a classifier), and ``metrics`` the ncviz rows computed
    under the convention's options.
    """

    means: torch.Tensor
    centred: torch.Tensor
    counts: torch.Tensor
    within_trace: float
    weight: torch.Tensor | None
    agreement: int | None
    metrics: Mapping[str, float]

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())


RowsFn = Callable[[ConventionInputs], dict[str, float]]


@dataclass(frozen=True)
class Convention:
    """A paper's conventions: the options it sets and the rows it reports.

    Attributes:
        name: the preset's name (``--convention NAME``).
        title: the paper, as cited on pages and in exports.
        code: the authors' code the preset reproduces (where their text and code differ, the
            code wins, and ``differences`` says so).
        options: the :class:`~ncviz.metrics.options.CollapseOptions` values it sets.
        differences: what it changes relative to ncviz's defaults, one line each.
        rows: the paper's rows from :class:`ConventionInputs`; None = ncviz's own rows.
        task: "classification", "regression" (its rows come from
            :func:`ncviz.metrics.regression.nrc2024_result`) or "any".
        columns: the rows the paper reports; one the input cannot give (no classifier W, a
            single class pair) is left out and :meth:`missing` says so.
    """

    name: str
    title: str
    code: str
    options: Mapping[str, Any] = field(default_factory=dict)
    differences: tuple[str, ...] = ()
    rows: RowsFn | None = None
    task: str = "classification"
    columns: tuple[str, ...] = ()

    def missing(self, rows: Mapping[str, float]) -> str:
        """A warning naming the paper's rows these ``rows`` lack, or ""."""
        absent = [column for column in self.columns if column not in rows]
        if not absent:
            return ""
        return (
            f"{self.name}: {', '.join(absent)} left out — the input lacks what they need (a "
            "classifier W for the classifier rows)."
        )

    def apply(self, inputs: ConventionInputs) -> dict[str, float]:
        """The rows this convention reports for classification features."""
        if self.task == "regression":
            valid = ", ".join(n for n, c in CONVENTIONS.items() if c.task != "regression")
            raise InputError(
                f"the {self.name!r} convention is for regression (targets); a classification "
                f"run takes one of {valid}."
            )
        if self.rows is None:
            return dict(inputs.metrics)
        return self.rows(inputs)


def _population(unbiased: float | None, count: int) -> float:
    """A variance over ``count`` values with divisor n, from the unbiased one."""
    if unbiased is None or count < 2:
        return float("nan")
    return unbiased * (count - 1) / count


#: The columns of the Linguistic Collapse results table (statistics only), in its order.
LC_COLUMNS = (
    "cdnv",
    "norms_mean",
    "norms_var",
    "norms_log_mean",
    "norms_log_var",
    "etf_error",
    "interfere_mean",
    "interfere_var",
    "log_kern_mean",
    "log_kern_var",
    "dual_error",
    "simdot_mean",
    "simdot_var",
    "simcos_mean",
    "simcos_var",
    "dists_mean",
    "dists_var",
    "hits",
    "misses",
)


def _lc_rows(inputs: ConventionInputs) -> dict[str, float]:
    metrics, centred = inputs.metrics, inputs.centred
    num_classes = len(centred)
    pairs = num_classes * (num_classes - 1) // 2
    norms = centred.norm(dim=1)
    rows = {
        "cdnv": metrics["cdnv"],
        **mean_and_variance("norms", norms),
        **mean_and_variance("norms_log", norms.log()),
        "etf_error": metrics["nc2_etf_distance"],
        "interfere_mean": metrics["interference_mean"],
        "interfere_var": _population(metrics.get("interference_var"), pairs),
        "log_kern_mean": metrics["gnc2_log_mean"],
        "log_kern_var": _population(metrics.get("gnc2_log_var"), pairs),
    }
    if inputs.weight is not None:
        weight = inputs.weight
        unit_w = weight / weight.norm(dim=1, keepdim=True)
        unit_m = centred / norms[:, None]
        rows.update(
            {
                "dual_error": metrics["nc3_gram"],
                **mean_and_variance("simdot", (weight * centred).sum(dim=1)),
                **mean_and_variance("simcos", (unit_w * unit_m).sum(dim=1)),
                **mean_and_variance("dists", (unit_w - unit_m).norm(dim=1)),
            }
        )
    if inputs.agreement is not None:
        rows["hits"] = float(inputs.agreement)
        rows["misses"] = float(inputs.num_samples - inputs.agreement)
    return rows


def _rfm_rows(inputs: ConventionInputs) -> dict[str, float]:
    centred = inputs.centred
    num_classes = len(centred)
    within = inputs.within_trace / (num_classes * inputs.num_samples)
    between = float((centred**2).sum()) / num_classes
    unit = centred / centred.norm(dim=1, keepdim=True)
    gram = unit @ unit.T
    simplex = torch.full_like(gram, -1.0 / (num_classes - 1))
    simplex.fill_diagonal_(1.0)
    return {"nc1": within / between, "nc2": float(((gram - simplex) ** 2).mean())}


PAPYAN_ROWS = (
    "nc1",
    "nc2_equinorm_means",
    "nc2_equinorm_weights",
    "nc2_equiangle_means",
    "nc2_equiangle_weights",
    "nc2_maxangle_means",
    "nc2_maxangle_weights",
    "nc3",
    "nc4",
    "accuracy",
)


def _papyan_rows(inputs: ConventionInputs) -> dict[str, float]:
    return {key: inputs.metrics[key] for key in PAPYAN_ROWS if key in inputs.metrics}


NCMC_ROWS = ("accuracy", "accuracy_minority", "accuracy_majority")


def _ncmc_rows(inputs: ConventionInputs) -> dict[str, float]:
    """The per-layer rows of ncmc2024 (the ``ncmc_*`` rows need the run's centres and are added
    over the run: :func:`ncviz.analysis.followups.with_ncmc`)."""
    return {key: inputs.metrics[key] for key in NCMC_ROWS if key in inputs.metrics}


#: The presets, by name. ``ncviz`` first (the default).
CONVENTIONS: Mapping[str, Convention] = MappingProxyType(
    {
        c.name: c
        for c in (
            Convention(
                "ncviz",
                "ncviz's defaults (docs/metrics.md)",
                "ncviz.metrics",
                differences=("every ncviz row, with the defaults of docs/metrics.md",),
                task="any",
            ),
            Convention(
                "papyan2020",
                "Papyan, Han & Donoho 2020 (PNAS)",
                "the paper's definitions of NC1–NC4",
                options={"global_mean": "sample"},
                differences=(
                    "μ_G is the mean of all samples (global_mean=sample), not of the class means",
                    "rows: NC1 (Tr(Σ_W Σ_B⁺)/C), NC2 equinorm/equiangle/maxangle, NC3, NC4",
                ),
                rows=_papyan_rows,
                columns=PAPYAN_ROWS,
            ),
            Convention(
                "lc2024",
                "Wu & Papyan 2024, Linguistic Collapse (NeurIPS)",
                "rhubarbwu/linguistic-collapse with rhubarbwu/neural-collapse (measure.py, "
                "kernels.py)",
                options={"min_count": 1, "dist_exp": 2.0, "global_mean": "class"},
                differences=(
                    "every class seen at least once is kept (min_count=1)",
                    "cdnv divides by the squared distance squared (dist_exp=2)",
                    "pair statistics: mean and population variance over pairs i<j",
                    "per-class statistics: mean and unbiased variance",
                    "rows: the columns of their table (cdnv, norms_*, etf_error, interfere_*, "
                    "log_kern_*, dual_error, simdot_*, simcos_*, dists_*, hits, misses)",
                ),
                rows=_lc_rows,
                columns=LC_COLUMNS,
            ),
            Convention(
                "rfm2024",
                "Beaglehole et al. 2024, Deep RFM / AGOP (NeurIPS)",
                "the authors' Deep RFM script (get_class_variance, get_NC2_from_means)",
                options={"global_mean": "class"},
                differences=(
                    "nc1 = tr Σ_W / tr Σ_B with Σ_W divided by C·N as in their code (1/C of "
                    "ncviz's nc1_trace_ratio; the paper's text writes 1/N)",
                    "nc2 = mean over C×C entries of (ÛÛᵀ − S)², S the simplex Gram",
                ),
                rows=_rfm_rows,
                columns=("nc1", "nc2"),
            ),
            Convention(
                "nrc2024",
                "Andriopoulos et al. 2024, Neural Regression Collapse (NeurIPS)",
                "the authors' NC_regression metric script (compute_NRC1, compute_metrics)",
                differences=(
                    "nrc1 projects the raw rows on the principal directions of the centred ones "
                    "(ncviz: the normalised centred rows on their own); nrc1n, nrc1nc: rows "
                    "normalised, or centred then normalised",
                    "nrc1_pca1…10 and evr1…10; nrc2, nrc2n onto span(W); r2 and mse of W h + b",
                    "nrc3 at the γ of a 1,000-point grid, fixed over a run at the final "
                    "checkpoint's (ncviz: each checkpoint's own minimum)",
                ),
                task="regression",
            ),
            Convention(
                "ncmc2024",
                "Yan et al. 2024, Neural Collapse to Multiple Centers (NeurIPS)",
                "the paper's definitions (the authors' code was not available to us)",
                differences=(
                    "rows: accuracy, accuracy_minority, accuracy_majority and, for a run "
                    "trained to fixed centres, ncmc_nc_ave/_std/_alignment/_centres at the "
                    "classifier input: each class's collapse to the mean of its centres",
                ),
                rows=_ncmc_rows,
                columns=NCMC_ROWS,
            ),
            Convention(
                "dufm2024",
                "Súkeník, Lampert & Mondelli 2024, deep UFM low-rank bias (NeurIPS)",
                "the paper's rank of the class-mean matrix",
                options={"means_centring": "uncentred"},
                differences=(
                    "the class means' rank is of the uncentred [μ_c] (rank_means_uncentred)",
                ),
            ),
        )
    }
)


def convention(name: str) -> Convention:
    """The preset ``name``; an unknown name is one line listing the valid ones.

    >>> convention("lc2024").options["dist_exp"]
    2.0
    """
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise OptionError(
            f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)} "
            "(`ncviz conventions` lists what each changes)."
        ) from None


def describe_conventions() -> str:
    """The presets and what each changes, as ``ncviz conventions`` prints them."""
    lines = []
    for c in CONVENTIONS.values():
        lines.append(f"{c.name} — {c.title}")
        lines.append(f"  follows: {c.code}")
        if c.options:
            options = ", ".join(f"{k}={v}" for k, v in c.options.items())
            lines.append(f"  options: {options}")
        lines.extend(f"  · {line}" for line in c.differences)
    return "\n".join(lines)
