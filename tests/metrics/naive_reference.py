"""Plain-numpy reference for every metric: all samples in memory, loops, textbook formulas.

Written independently of ncviz.metrics (no shared helpers) so that agreement means something.
"""

from __future__ import annotations

import itertools

import numpy as np


def naive_metrics(h, y, w=None, b=None, global_mean="class", dist_exp=1.0, tau=1e-2):
    h = np.asarray(h, dtype=np.float64)
    classes = np.unique(y)
    n_classes = len(classes)
    n, d = h.shape
    groups = [h[y == c] for c in classes]
    counts = np.array([len(g) for g in groups])
    mu = np.stack([g.mean(axis=0) for g in groups])
    mu_g = mu.mean(axis=0) if global_mean == "class" else h.mean(axis=0)
    m = (mu - mu_g).T  # d×C, columns centred means

    sw = np.zeros((d, d))
    for g, mean in zip(groups, mu):
        for row in g:
            diff = row - mean
            sw += np.outer(diff, diff)
    sw /= n
    sb = m @ m.T / n_classes
    evals, evecs = np.linalg.eigh(sb)
    order = np.argsort(evals)[::-1][: min(n_classes - 1, d)]
    evals, evecs = evals[order], evecs[:, order]
    keep = evals > 1e-10 * evals[0]
    sb_pinv = evecs[:, keep] @ np.diag(1.0 / evals[keep]) @ evecs[:, keep].T
    out = {
        "nc1": np.trace(sw @ sb_pinv) / n_classes,
        "nc1_rank": float(keep.sum()),
        "nc1_trace_ratio": np.trace(sw) / np.trace(sb),
    }
    var_c = np.array([((g - mean) ** 2).sum(axis=1).mean() for g, mean in zip(groups, mu)])
    pairs = list(itertools.combinations(range(n_classes), 2))
    out["cdnv"] = np.mean(
        [(var_c[i] + var_c[j]) / (2 * (np.sum((mu[i] - mu[j]) ** 2)) ** dist_exp) for i, j in pairs]
    )
    norms = np.linalg.norm(m, axis=0)
    out["nc2_equinorm_means"] = norms.std(ddof=1) / norms.mean()
    unit = m / norms
    cos = unit.T @ unit
    off = cos[~np.eye(n_classes, dtype=bool)]
    out["nc2_equiangle_means"] = off.std(ddof=1)
    out["nc2_maxangle_means"] = np.abs(off + 1 / (n_classes - 1)).mean()
    gram = m.T @ m
    etf = (np.eye(n_classes) - 1 / n_classes) / np.sqrt(n_classes - 1)
    out["nc2_etf_distance"] = np.linalg.norm(gram / np.linalg.norm(gram) - etf)
    logs = np.array([np.log(1 / np.linalg.norm(unit[:, i] - unit[:, j])) for i, j in pairs])
    out["gnc2_log_mean"] = logs.mean()
    out["gnc2_log_var"] = logs.var(ddof=1)

    s = np.linalg.svd(m, compute_uv=False)
    out["rank_means"] = float(np.sum(s > tau * s[0]))
    p = s / s.sum()
    p = p[p > 0]
    out["effective_rank_means"] = float(np.exp(-(p * np.log(p)).sum()))

    minority = counts < counts.max() / 2
    if n_classes > 100 and 2 * minority.sum() > n_classes:  # a long tail (docs/metrics.md)
        minority = counts <= np.median(counts)
    if minority.sum() >= 2:
        mu_min = unit[:, minority]
        c = mu_min.T @ mu_min
        out["minority_cos_means"] = c[~np.eye(len(c), dtype=bool)].mean()

    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        wn = np.linalg.norm(w, axis=1)
        out["nc2_equinorm_weights"] = wn.std(ddof=1) / wn.mean()
        wu = w / wn[:, None]
        wcos = wu @ wu.T
        woff = wcos[~np.eye(n_classes, dtype=bool)]
        out["nc2_equiangle_weights"] = woff.std(ddof=1)
        out["nc2_maxangle_weights"] = np.abs(woff + 1 / (n_classes - 1)).mean()
        out["nc3"] = np.linalg.norm(w / np.linalg.norm(w) - m.T / np.linalg.norm(m)) ** 2
        wm = w @ m
        out["nc3_gram"] = np.linalg.norm(wm / np.linalg.norm(wm) - etf)
        align = np.array([w[c] @ m[:, c] / (wn[c] * norms[c]) for c in range(n_classes)])
        out["unc3_mean"] = align.mean()
        out["unc3_var"] = align.var(ddof=1)
        logits = h @ w.T + (0 if b is None else np.asarray(b))
        pred = logits.argmax(axis=1)
        dists = np.stack([np.linalg.norm(h - mean, axis=1) for mean in mu], axis=1)
        ncc = dists.argmin(axis=1)
        y_index = np.searchsorted(classes, y)
        out["nc4"] = np.mean(pred != ncc)
        out["accuracy"] = np.mean(pred == y_index)
        if minority.sum() >= 2:
            c = wu[minority] @ wu[minority].T
            out["minority_cos"] = c[~np.eye(len(c), dtype=bool)].mean()
        if 1 <= minority.sum() < n_classes:
            out["norm_ratio_weights"] = wn[~minority].mean() / wn[minority].mean()
            in_minority = minority[y_index]
            out["accuracy_minority"] = np.mean(pred[in_minority] == y_index[in_minority])
            out["accuracy_majority"] = np.mean(pred[~in_minority] == y_index[~in_minority])
    return {k: float(v) for k, v in out.items()}


def naive_arrays(h, y, w=None):
    """Spectra and per-class values for comparison with CollapseResult.arrays."""
    h = np.asarray(h, dtype=np.float64)
    classes = np.unique(y)
    mu = np.stack([h[y == c].mean(axis=0) for c in classes])
    m = mu - mu.mean(axis=0)
    cov = np.cov(h.T, bias=True)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1][:256]
    out = {
        "class_means": mu,
        "sv_means": np.linalg.svd(m, compute_uv=False),
        "sv_features": np.sqrt(np.clip(eig, 0, None)),
        "class_counts": np.array([np.sum(y == c) for c in classes]),
        "mean_norms": np.linalg.norm(m, axis=1),
        "class_variances": np.array(
            [((h[y == c] - mu[k]) ** 2).sum(axis=1).mean() for k, c in enumerate(classes)]
        ),
    }
    if w is not None:
        out["sv_weights"] = np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False)
    return out
