"""Geometry of the centred class means M and the classifier rows W (NC2, NC3, CDNV, GNC2).

All pairwise quantities are reduced tile by tile over rows, so C = 32k classes never allocates a
C×C matrix: a tile is t×C with t·C ≤ 2**20 entries. Formulas and sources are in docs/metrics.md; the
ones used here, with u_c = m_c/‖m_c‖ for the centred means m_c = μ_c − μ_G and the simplex-ETF
Gram E = (I − 11ᵀ/C)/√(C−1):

* equinorm: std_c ‖m_c‖ / mean_c ‖m_c‖ (Papyan et al. 2020)
* equiangle: std over c≠c′ of cos(u_c, u_c′); maxangle: mean over c≠c′ of |cos + 1/(C−1)|
* ETF distance: ‖G/‖G‖_F − E‖_F, G = MᵀM (Kothapalli 2023); nc3_gram the same with G = W M
* GNC2: mean/var over i<j of log(1/‖u_i − u_j‖) (Liu et al. 2023; Wu & Papyan 2024)
* CDNV: mean over i<j of (σ_i² + σ_j²) / (2 (‖μ_i − μ_j‖²)^p) (Galanti et al. 2022); inf when two
  classes have identical means

Squared distances come from the Gram matrix (‖a‖² + ‖b‖² − 2a·b), which loses digits as two
means approach; every pair closer than 1e-4 of ‖a‖² + ‖b‖² is recomputed from the direct
difference, so CDNV and GNC2 stay exact down to identical means.
* NC3: ‖W/‖W‖_F − Mᵀ/‖M‖_F‖_F² (Papyan 2020); UNC3: cos(w_c, m_c) (Wu & Papyan 2024)

Peer statistics of the Linguistic Collapse analysis (Wu & Papyan 2024), each a mean and an
unbiased variance: the norms ‖m_c‖ and their logs, the interference m_iᵀm_j over i<j, the Riesz
kernel sign(s)·‖u_i − u_j‖^(−s) with s = d − 2 (Liu et al. 2023), and with W the dot products
w_cᵀm_c and the distances ‖w_c/‖w_c‖ − u_c‖ between a classifier row and its class mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ncviz.metrics.moments import RunningMoments, mean_and_variance

_TILE_ENTRIES = 2**20
# pairs whose Gram-based squared distance is below this fraction of ‖a‖² + ‖b‖² are recomputed
# from the direct difference a − b (the Gram form has lost ~4 digits there)
_RECOMPUTE_RTOL = 1e-4
_PAIR_CHUNK = 2**14


def _exact_sq_dist(
    approx: torch.Tensor,
    scale: torch.Tensor,
    upper: torch.Tensor,
    vectors: torch.Tensor,
    start: int,
    norms: torch.Tensor | None = None,
) -> torch.Tensor:
    """The upper-triangle entries of a tile of squared distances ``approx`` (rows start.., cols
    start..), with every pair below ``_RECOMPUTE_RTOL · scale`` recomputed as ‖v_i − v_j‖² from
    the direct difference of ``vectors`` (of ``vectors / norms`` row-wise when ``norms`` is
    given: unit vectors formed only for the close pairs)."""
    close = torch.nonzero((approx <= _RECOMPUTE_RTOL * scale) & upper)
    if len(close):
        approx = approx.clone()
        for first in range(0, len(close), _PAIR_CHUNK):
            rows, cols = close[first : first + _PAIR_CHUNK].T
            first_rows, second_rows = vectors[rows + start], vectors[cols + start]
            if norms is not None:
                first_rows = first_rows / norms[rows + start, None]
                second_rows = second_rows / norms[cols + start, None]
            diff = first_rows - second_rows
            approx[rows, cols] = (diff * diff).sum(dim=1)
    return approx[upper]


def etf_gram_entries(num_classes: int) -> tuple[float, float]:
    """Diagonal and off-diagonal entries of the unit-Frobenius simplex-ETF Gram E."""
    scale = 1.0 / math.sqrt(num_classes - 1)
    return (1.0 - 1.0 / num_classes) * scale, -scale / num_classes


def etf_distance_floor(num_classes: int, dim: int) -> float:
    """Smallest ‖G/‖G‖_F − E‖_F possible when C − 1 > d: √(2 − 2√(d/(C−1)))."""
    if num_classes - 1 <= dim:
        return 0.0
    return math.sqrt(2.0 - 2.0 * math.sqrt(dim / (num_classes - 1)))


@dataclass
class _CosineSums:
    """Running reductions over unordered pairs i<j of one set of vectors."""

    cosines: RunningMoments = field(default_factory=RunningMoments)
    maxangle_sum: float = 0.0

    def add(self, cos: torch.Tensor, num_classes: int) -> None:
        self.cosines.add(cos)
        self.maxangle_sum += float((cos + 1.0 / (num_classes - 1)).abs().sum())


def _std_over_mean(values: torch.Tensor) -> float:
    return float(values.std(unbiased=True) / values.mean())


def _cosine_matrix(
    a: torch.Tensor, b: torch.Tensor, products: torch.Tensor | None = None
) -> torch.Tensor:
    """cos(a_i, b_j) for all pairs; ``products`` = a bᵀ when already formed."""
    if products is None:
        a_hat = a / a.norm(dim=1, keepdim=True)
        b_hat = b / b.norm(dim=1, keepdim=True)
        return a_hat @ b_hat.T
    return products / (a.norm(dim=1)[:, None] * b.norm(dim=1)[None, :])


def geometry_metrics(
    centred_means: torch.Tensor,
    weight: torch.Tensor | None = None,
    class_variances: torch.Tensor | None = None,
    dist_exp: float = 1.0,
    max_matrix_classes: int = 2048,
    means: torch.Tensor | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray], list[str]]:
    """NC2/NC3/GNC2/CDNV scalars, per-class arrays and warnings from M (C×d) and W (C×d).

    ``class_variances`` are σ_c² (needed only for ``cdnv``); ``means`` the uncentred class
    means, whose direct differences give the distances of close pairs (default: M's rows).
    Cosine matrices are returned for plotting only when C ≤ ``max_matrix_classes``. A zero
    row of M or W has no direction: the angles that involve it are NaN, and a warning says so.
    """
    m = centred_means.to(torch.float64)
    raw = m if means is None else means.to(torch.float64)
    num_classes, dim = m.shape
    w = None if weight is None else weight.to(torch.float64)
    mean_norms = m.norm(dim=1)
    mean_sq_norms = mean_norms**2
    weight_norms = None if w is None else w.norm(dim=1)
    e_diag, e_off = etf_gram_entries(num_classes)

    tile = max(1, _TILE_ENTRIES // num_classes)
    # with one tile the C×C products are formed once and serve the norms, the pair reductions
    # and the plotted cosine matrices alike
    full: dict[str, torch.Tensor] = {}
    if tile >= num_classes:
        full["means"] = m @ m.T
        if w is not None:
            full["weights"] = w @ w.T
            full["weights_means"] = w @ m.T
    if "means" in full:
        gram_norm = float(full["means"].norm())
    else:
        gram_norm = float((m @ m.T).norm()) if num_classes <= dim else float((m.T @ m).norm())
    etf_sq = float(((mean_sq_norms / gram_norm - e_diag) ** 2).sum())
    wm_norm = 0.0
    if w is not None:
        # ‖W Mᵀ‖_F² = ⟨WᵀW, MᵀM⟩ computed in whichever of C×C and d×d is smaller
        if "weights_means" in full:
            wm_norm = float(full["weights_means"].norm())
        elif num_classes <= dim:
            wm_norm = float((w @ m.T).norm())
        else:
            wm_norm = math.sqrt(max(float(((w.T @ w) * (m.T @ m)).sum()), 0.0))
    wm_etf_sq = 0.0

    warnings: list[str] = []
    for name, norms in (("class mean (centred)", mean_norms), ("classifier row", weight_norms)):
        if norms is not None and bool((norms == 0).any()):
            zero = torch.nonzero(norms == 0).flatten().tolist()
            warnings.append(
                f"{len(zero)} {name}(s) are zero (class index {zero[0]}…): the angles that "
                "involve them are undefined (NaN)."
            )
    identical_pairs = 0
    mean_sums, weight_sums = _CosineSums(), _CosineSums()
    log_inv_dist = RunningMoments()
    interference, riesz = RunningMoments(), RunningMoments()
    riesz_exponent = dim - 2  # s of the Riesz s-energy on the sphere S^(d−1)
    cdnv_sum = 0.0
    for start in range(0, num_classes, tile):
        stop = min(start + tile, num_classes)
        rows = torch.arange(start, stop, device=m.device)
        cols = torch.arange(start, num_classes, device=m.device)
        upper = cols[None, :] > rows[:, None]

        gram = full["means"] if full else m[start:stop] @ m[start:].T
        pair_gram = gram[upper]
        norm_prod = (mean_norms[start:stop, None] * mean_norms[None, start:])[upper]
        cos = pair_gram / norm_prod
        mean_sums.add(cos, num_classes)
        interference.add(pair_gram)
        etf_sq += 2.0 * float(((pair_gram / gram_norm - e_off) ** 2).sum())
        unit_gram = gram / (mean_norms[start:stop, None] * mean_norms[None, start:])
        approx = (2.0 - 2.0 * unit_gram).clamp(min=0.0)
        unit_sq_dist = _exact_sq_dist(
            approx, torch.full_like(approx, 2.0), upper, m, start, norms=mean_norms
        )
        log_inv_dist.add(-0.5 * torch.log(unit_sq_dist))
        riesz.add(math.copysign(1.0, riesz_exponent) * unit_sq_dist ** (-riesz_exponent / 2))
        if class_variances is not None:
            # distances of the centred means from the same Gram; close pairs are recomputed
            # from the uncentred means (centring itself rounds)
            norm_sums = mean_sq_norms[start:stop, None] + mean_sq_norms[None, start:]
            approx = (norm_sums - 2.0 * gram).clamp(min=0.0)
            sq_dist = _exact_sq_dist(approx, norm_sums, upper, raw, start)
            identical_pairs += int((sq_dist == 0).sum())
            var_sum = (class_variances[start:stop, None] + class_variances[None, start:])[upper]
            ratio = var_sum / (2.0 * sq_dist**dist_exp)
            cdnv_sum += float(torch.where(sq_dist == 0, math.inf, ratio).sum())

        if w is not None:
            w_gram = (full["weights"] if full else w[start:stop] @ w[start:].T)[upper]
            w_norm_prod = (weight_norms[start:stop, None] * weight_norms[None, start:])[upper]
            weight_sums.add(w_gram / w_norm_prod, num_classes)
            wm = (full["weights_means"] if full else w[start:stop] @ m.T) / wm_norm
            wm -= e_off
            wm[rows - start, rows] -= e_diag - e_off
            wm_etf_sq += float((wm**2).sum())

    num_pairs = num_classes * (num_classes - 1) // 2
    scalars: dict[str, float] = {
        "nc2_equinorm_means": _std_over_mean(mean_norms),
        # std over ordered pairs c≠c′ (each unordered pair twice), ddof = 1, as Papyan's code
        "nc2_equiangle_means": mean_sums.cosines.repeated(2).std(ddof=1),
        "nc2_maxangle_means": mean_sums.maxangle_sum / num_pairs,
        "nc2_etf_distance": math.sqrt(max(etf_sq, 0.0)),
        "gnc2_log_mean": log_inv_dist.mean,
        "gnc2_riesz_mean": riesz.mean,
        "interference_mean": interference.mean,
        **mean_and_variance("means_norm", mean_norms),
        **mean_and_variance("means_log_norm", torch.log(mean_norms)),
    }
    if num_pairs >= 2:
        scalars["gnc2_log_var"] = log_inv_dist.variance(ddof=1)
        scalars["gnc2_riesz_var"] = riesz.variance(ddof=1)
        scalars["interference_var"] = interference.variance(ddof=1)
    if num_classes - 1 > dim:
        scalars["nc2_etf_distance_floor"] = etf_distance_floor(num_classes, dim)
    if class_variances is not None:
        scalars["cdnv"] = cdnv_sum / num_pairs
        if identical_pairs:
            warnings.append(
                f"{identical_pairs} pair(s) of classes have identical means: cdnv is inf."
            )
    arrays: dict[str, np.ndarray] = {"mean_norms": mean_norms.cpu().numpy()}
    small = num_classes <= max_matrix_classes
    if small:
        arrays["cos_means"] = _cosine_matrix(m, m, full.get("means")).cpu().numpy()
    if w is not None:
        alignment = torch.einsum("cd,cd->c", w, m) / (weight_norms * mean_norms)
        w_unit = w / weight_norms[:, None]
        w_total, m_total = float(w.norm()), float(m.norm())
        nc3 = 0.0
        for rows in range(0, num_classes, tile):  # no C×d temporaries
            diff = w[rows : rows + tile] / w_total - m[rows : rows + tile] / m_total
            nc3 += float((diff * diff).sum())
        scalars.update(
            {
                "nc2_equinorm_weights": _std_over_mean(weight_norms),
                "nc2_equiangle_weights": weight_sums.cosines.repeated(2).std(ddof=1),
                "nc2_maxangle_weights": weight_sums.maxangle_sum / num_pairs,
                "nc3": nc3,
                "nc3_gram": math.sqrt(max(wm_etf_sq, 0.0)),
                "unc3_mean": float(alignment.mean()),
                "unc3_var": float(alignment.var(unbiased=True)) if num_classes > 1 else math.nan,
                **mean_and_variance("unc3_dot", torch.einsum("cd,cd->c", w, m)),
                **mean_and_variance(
                    "dual_distance", (w_unit - m / mean_norms[:, None]).norm(dim=1)
                ),
            }
        )
        arrays["weight_norms"] = weight_norms.cpu().numpy()
        arrays["alignment"] = alignment.cpu().numpy()
        if small:
            arrays["cos_weights"] = _cosine_matrix(w, w, full.get("weights")).cpu().numpy()
            arrays["cos_weights_means"] = (
                _cosine_matrix(w, m, full.get("weights_means")).cpu().numpy()
            )
    return scalars, arrays, warnings
