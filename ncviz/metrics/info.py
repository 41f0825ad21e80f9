"""What each metric key means, where it comes from, and how to plot it.

The app, the CLI summary and the exports read labels and axis scales from here instead of repeating
them. ``collapsed`` is the value the metric takes under exact neural collapse (None where there is
no single such value).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    meaning: str
    source: str
    collapsed: float | None = 0.0
    log_scale: bool = True
    group: str = "classification"


OOD_ALIGNMENT = "NC-inspired OOD feature alignment (NeurIPS 2024)"
NCMC = "NC to multiple centres (NCMC, NeurIPS 2024)"


def _info(*rows: tuple) -> dict[str, MetricInfo]:
    return {row[0]: MetricInfo(*row) for row in rows}


METRICS: dict[str, MetricInfo] = _info(
    (
        "nc1",
        "NC1",
        "within-class variability relative to between-class spread, Tr(Σ_W Σ_B⁺)/C",
        "Papyan, Han & Donoho 2020",
    ),
    ("nc1_rank", "NC1 rank", "eigenpairs of Σ_B kept in its pseudo-inverse", "—", None, False),
    ("classes_kept", "classes kept", "classes with at least min_count samples", "—", None, False),
    ("classes_dropped", "classes dropped", "classes below min_count", "—", None, False),
    ("samples_dropped", "samples dropped", "samples of the dropped classes", "—", None, False),
    (
        "nc1_trace_ratio",
        "Tr Σ_W / Tr Σ_B",
        "total within- over between-class variance",
        "Tirer et al. 2023",
    ),
    (
        "cdnv",
        "CDNV",
        "class-distance normalised variance, mean over class pairs",
        "Galanti et al. 2022",
    ),
    (
        "nc2_equinorm_means",
        "Equinorm (means)",
        "spread of class-mean norms (std/mean)",
        "Papyan 2020",
    ),
    (
        "nc2_equinorm_weights",
        "Equinorm (W)",
        "spread of classifier-row norms (std/mean)",
        "Papyan 2020",
    ),
    (
        "nc2_equiangle_means",
        "Equiangle (means)",
        "std of cosines between centred class means",
        "Papyan 2020",
    ),
    (
        "nc2_maxangle_means",
        "Max-angle (means)",
        "mean |cos + 1/(C−1)| over class-mean pairs",
        "Papyan 2020",
    ),
    (
        "nc2_equiangle_weights",
        "Equiangle (W)",
        "std of cosines between classifier rows",
        "Papyan 2020",
    ),
    (
        "nc2_maxangle_weights",
        "Max-angle (W)",
        "mean |cos + 1/(C−1)| over classifier-row pairs",
        "Papyan 2020",
    ),
    (
        "nc2_etf_distance",
        "ETF distance",
        "distance of the normalised mean Gram to the simplex ETF",
        "Kothapalli 2023",
    ),
    (
        "nc2_etf_distance_floor",
        "ETF distance floor",
        "smallest ETF distance possible when C−1 > d",
        "—",
        None,
        False,
    ),
    (
        "gnc2_log_mean",
        "GNC2 mean",
        "mean log inverse distance of unit class means",
        "Liu et al. 2023",
        None,
        False,
    ),
    (
        "gnc2_log_var",
        "GNC2 variance",
        "variance of log inverse distances (uniformity)",
        "Liu et al. 2023",
    ),
    (
        "nc3",
        "NC3",
        "distance between normalised W and normalised centred means (self-duality)",
        "Papyan 2020",
    ),
    (
        "nc3_gram",
        "NC3 Gram",
        "distance of the normalised W·M Gram to the simplex ETF",
        "Zhu et al. 2021",
    ),
    (
        "unc3_mean",
        "UNC3 mean",
        "mean cosine of each classifier row with its class mean",
        "Wu & Papyan 2024",
        1.0,
        False,
    ),
    ("unc3_var", "UNC3 variance", "variance over classes of that cosine", "Wu & Papyan 2024"),
    (
        "nc4",
        "NC4",
        "rate at which the classifier disagrees with the nearest class mean",
        "Papyan 2020",
        0.0,
        False,
    ),
    ("accuracy", "Accuracy", "fraction classified correctly", "—", 1.0, False),
    (
        "rank_means",
        "Rank of M",
        "singular values of M above τ·s₁",
        "Súkeník et al. 2024",
        None,
        False,
        "spectra",
    ),
    (
        "effective_rank_means",
        "Effective rank of M",
        "exp(entropy of normalised singular values)",
        "Roy & Vetterli 2007",
        None,
        False,
        "spectra",
    ),
    (
        "minority_cos",
        "Minority cosine (W)",
        "mean cosine between minority classifier rows",
        "Fang et al. 2021",
        None,
        False,
        "imbalance",
    ),
    (
        "minority_cos_means",
        "Minority cosine (means)",
        "mean cosine between minority class means",
        "Fang et al. 2021",
        None,
        False,
        "imbalance",
    ),
    (
        "norm_ratio_weights",
        "Norm ratio (W)",
        "majority over minority classifier-row norm",
        "Fang et al. 2021",
        1.0,
        False,
        "imbalance",
    ),
    (
        "accuracy_minority",
        "Minority accuracy",
        "classifier accuracy over the minority classes' samples",
        "Fang et al. 2021",
        1.0,
        False,
        "imbalance",
    ),
    (
        "accuracy_majority",
        "Majority accuracy",
        "classifier accuracy over the majority classes' samples",
        "Fang et al. 2021",
        1.0,
        False,
        "imbalance",
    ),
    (
        "prototype_distance",
        "Prototype distance",
        "mean ‖M̂_g − M̂_g′‖_F of a group's normalised class means to the other groups'",
        OOD_ALIGNMENT,
        0.0,
        False,
        "groups",
    ),
    (
        "etf_alignment",
        "ETF alignment",
        "‖M̂_g − Ê‖_F of a group's normalised class means to the common simplex ETF",
        OOD_ALIGNMENT,
        0.0,
        False,
        "groups",
    ),
    (
        "mc_nc_ave",
        "NC_ave (multi-centre)",
        "mean over classes of the per-class collapse to the nearest of the class's centres",
        NCMC,
        0.0,
        True,
        "multi-centre",
    ),
    (
        "mc_nc_std",
        "NC_std (multi-centre)",
        "std over classes of the per-class collapse to the nearest centre",
        NCMC,
        0.0,
        True,
        "multi-centre",
    ),
    (
        "mc_alignment",
        "Centre alignment",
        "mean cosine of centred features to their assigned centre",
        NCMC,
        1.0,
        False,
        "multi-centre",
    ),
    (
        "mc_centres",
        "Centres per class",
        "mean number of centres per class (k-means, silhouette)",
        NCMC,
        None,
        False,
        "multi-centre",
    ),
    (
        "nrc1",
        "NRC1",
        "feature residual outside the top-n principal subspace",
        "Andriopoulos et al. 2024",
        0.0,
        True,
        "regression",
    ),
    (
        "nrc2",
        "NRC2",
        "feature residual outside the row space of W",
        "Andriopoulos et al. 2024",
        0.0,
        True,
        "regression",
    ),
    (
        "nrc3",
        "NRC3",
        "distance of WWᵀ to the UFM shape Σ_Y^{1/2} − γ^{1/2}I",
        "Andriopoulos et al. 2024",
        0.0,
        True,
        "regression",
    ),
    (
        "nrc3_gamma",
        "NRC3 γ",
        "γ minimising NRC3",
        "Andriopoulos et al. 2024",
        None,
        False,
        "regression",
    ),
    (
        "agop_nfa_corr",
        "NFA corr (AGOP)",
        "Pearson correlation of WᵀW and the AGOP at a linear layer's input",
        "Beaglehole et al. 2024",
        None,
        False,
        "feature learning",
    ),
    (
        "agop_nfa_corr_sqrt",
        "NFA corr (AGOP^½)",
        "Pearson correlation of WᵀW and AGOP^½ (the neural feature ansatz)",
        "Beaglehole et al. 2024",
        None,
        False,
        "feature learning",
    ),
    (
        "stage_nc1_input",
        "NC1 of layer input",
        "Tr Σ_W / Tr Σ_B of a linear layer's input",
        "Beaglehole et al. 2024",
        0.0,
        True,
        "feature learning",
    ),
    (
        "stage_nc1_svt",
        "NC1 after S Vᵀ",
        "Tr Σ_W / Tr Σ_B after the right singular vectors and singular values of W",
        "Beaglehole et al. 2024",
        0.0,
        True,
        "feature learning",
    ),
    (
        "stage_nc1_usvt",
        "NC1 after U S Vᵀ",
        "Tr Σ_W / Tr Σ_B of Wh + b",
        "Beaglehole et al. 2024",
        0.0,
        True,
        "feature learning",
    ),
    (
        "stage_nc1_activation",
        "NC1 after nonlinearity",
        "Tr Σ_W / Tr Σ_B of the block output holding the layer",
        "Beaglehole et al. 2024",
        0.0,
        True,
        "feature learning",
    ),
    (
        "geometric_complexity",
        "Geometric complexity",
        "mean ‖∂e(x)/∂x‖_F² of the embedding e (classifier input)",
        "Munn, Dherin & Gonzalvo 2024",
        None,
        True,
        "feature learning",
    ),
    (
        "geometric_collapse",
        "Geometric collapse",
        "CDNV with each class's mean geometric complexity in place of its variance",
        "Munn, Dherin & Gonzalvo 2024",
        0.0,
        True,
        "feature learning",
    ),
)
