"""Exact argmax decisions of affine scores, computed mostly in low precision.

NC4 and accuracy need, for every sample h, the nearest class centre argmin_c ‖h − μ_c‖² =
argmax_c (2μ_cᵀh − ‖μ_c‖²) and the classifier's argmax_k (w_kᵀh + b_k): both are argmax_j of an
affine score s_j(h) = v_jᵀh + o_j over a group of rows. For C classes that is an N×C×d GEMM per
group — at C = 1000 four times the cost of the within-class scatter in float64.

:class:`AffineDecisions` computes the scores in a cascade of precisions (bfloat16 where the CPU
has native bfloat16 dot products, then float32, then float64) and keeps a row's decision only
when the gap between its best and second-best score exceeds twice a rigorous bound on the
rounding error of that precision; the other rows go to the next precision. The last level is
float64 on the untranslated features — the answer of a plain float64 computation — so every
decision equals the float64 decision. Rows near a tie are few, so almost all the work is done
at the cheapest level.

The bound (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1: a dot product of
length n summed in any order with unit roundoff u is off by at most γ_n Σ|v_k x_k|,
γ_n = nu/(1 − nu)). Scores are formed on x = h − t (t the mean class centre, so that a large
common offset does not inflate the bound), with each group's rows centred and its offsets shifted
to end at 0 (one vector added to every row, or one number to every offset, changes no argmax),
as v̂ᵀx̂ + ô with the rounded inputs and offset
augmented into one product, and rounded to the output format: with e_x, e_v the relative
rounding of x and v, u_o the output rounding,

    |ŝ_j − s_j| ≤ κ (‖v_j‖‖x‖ + |o_j|),
    κ = e_x + e_v + e_x e_v + γ_{d+1}(1 + e_x)(1 + e_v) + u_o(1 + …)

and a decision is kept when top₁ − top₂ > 2κ (max_j ‖v_j‖ ‖x‖ + max_j |o_j|), with κ enlarged by
a safety factor of 1.5 and an absolute term for flushed subnormals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

# unit roundoff of each format: 2^-p for p bits of precision (bfloat16: 8, float32: 24, float64: 53)
UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}
# TF32 (CUDA with allow_tf32) rounds float32 GEMM inputs to 11 bits; "medium" precision on a CPU may
# use bfloat16 — either way no finer than 2^-8 is assumed when full float32 precision is not set.
_REDUCED_FLOAT32_INPUT = 2.0**-8
U64 = UNIT_ROUNDOFF[torch.float64]
_SAFETY = 1.5
_SMALLEST_NORMAL = 2.0**-126
# columns of the augmented inputs are padded to a multiple of this (aligned GEMM operands)
_PAD = 16
# score entries per sub-chunk (rows × rows of V), bounding the temporary score block
_SCORE_BLOCK = 2**22
_DEVICE_SCORE_BLOCK = 2**26  # on an accelerator: fewer, larger blocks (fewer host syncs)
# below this many score rows the bfloat16 level saves less than its conversions cost
_MIN_ROWS_FOR_BFLOAT16 = 64
_TOPK_MIN_WIDTH = 512


def _gamma(n: int, unit: float) -> float:
    return n * unit / (1.0 - n * unit)


def bfloat16_is_native(device: torch.device) -> bool:
    """True where bfloat16 GEMMs run natively with float32 accumulation (AVX512-BF16/AMX CPUs).

    On CUDA, cuBLAS may reduce bfloat16 products in reduced precision, so the bound above would
    not hold; the cascade starts at float32 there.
    """
    if device.type != "cpu":
        return False
    checks = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
        getattr(torch.cpu, "_is_amx_tile_supported", None),
    )
    return any(check is not None and bool(check()) for check in checks)


def _float32_input_unit(device: torch.device) -> float:
    """Relative rounding of a float32 GEMM's inputs under the current matmul precision."""
    reduced = torch.get_float32_matmul_precision() != "highest"
    if device.type == "cuda":
        reduced = reduced or bool(torch.backends.cuda.matmul.allow_tf32)
    return _REDUCED_FLOAT32_INPUT if reduced else 0.0


def _top_two(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the largest score, the second largest, and the index of the largest.

    ``topk`` is the fastest for wide rows and ten times slower than two ``max`` passes for rows
    of ~100 (measured on CPU), so narrow rows take the max, mask it, and take the max again."""
    if scores.shape[1] >= _TOPK_MIN_WIDTH:
        best = scores.topk(2, dim=1)
        return best.values[:, 0], best.values[:, 1], best.indices[:, 0]
    first, index = scores.max(dim=1)
    masked = scores.clone().scatter_(1, index[:, None], float("-inf"))
    return first, masked.max(dim=1).values, index


@dataclass(frozen=True)
class _Level:
    """One precision of the cascade: the GEMM dtype and κ of its error bound."""

    dtype: torch.dtype
    kappa: float
    absolute: float


def _kappa(e_x: float, e_v: float, gamma: float, output_unit: float) -> float:
    """κ of the module docstring, with the safety factor: inputs rounded by e_x and e_v,
    accumulation bounded by γ, the result rounded to a format of unit ``output_unit``."""
    kappa = e_x + e_v + e_x * e_v + gamma * (1 + e_x) * (1 + e_v)
    return _SAFETY * (kappa + output_unit * (1 + kappa))


def _levels(device: torch.device, dim: int, num_rows: int) -> list[_Level]:
    u32 = UNIT_ROUNDOFF[torch.float32]
    length = dim + 1  # augmented by the offset
    gamma = _gamma(length, u32)  # float32 accumulation at every level below float64
    absolute = 4.0 * length * _SMALLEST_NORMAL
    levels = []
    if bfloat16_is_native(device) and num_rows >= _MIN_ROWS_FOR_BFLOAT16:
        ub = UNIT_ROUNDOFF[torch.bfloat16]
        # x rounded to float32 then to bfloat16; v rounded (possibly through float32) likewise;
        # the output is bfloat16
        e_in = ub + 1.01 * u32
        levels.append(_Level(torch.bfloat16, _kappa(e_in, e_in, gamma, ub), absolute))
    e_in = u32 + _float32_input_unit(device) + 4 * U64
    levels.append(_Level(torch.float32, _kappa(e_in, e_in, gamma, u32), absolute))
    return levels


class AffineDecisions:
    """argmax_j (v_jᵀh + o_j) within each group of rows, equal to the float64 decision.

    ``groups`` are (V, o) or (V, o, scale): V a J_g×d matrix, o its J_g offsets, scores
    scale·v_jᵀh + o_j (scale 2 turns class centres into nearest-centre scores without a copy).
    ``translation`` t is subtracted from h before the low-precision levels (choose the mean class
    centre); it is rounded to float32 first so that h − t is formed without extra error.
    :meth:`decide` returns, per group, the index of the winning row for every sample (ties: the
    first maximal row of the float64 scores, as ``argmax`` gives it).

    >>> import torch
    >>> centres = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    >>> ncc = AffineDecisions([(centres, -(centres**2).sum(1), 2.0)], centres.mean(0))
    >>> ncc.decide(torch.tensor([[0.2, 0.3], [0.9, -1.0]]))[0].tolist()
    [0, 1]
    """

    def __init__(
        self,
        groups: list[tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, float]],
        translation: torch.Tensor,
    ) -> None:
        first = groups[0][0]
        self.device = first.device
        self.dim = int(first.shape[1])
        # (V, o, scale): scores scale·V h + o; a scale (e.g. 2 for centres) saves a copy of V
        self.exact = [
            (
                group[0].to(torch.float64),
                group[1].to(torch.float64),
                float(group[2]) if len(group) > 2 else 1.0,
            )
            for group in groups
        ]
        self.bounds: list[slice] = []
        start = 0
        for v, _, _ in self.exact:
            self.bounds.append(slice(start, start + len(v)))
            start += len(v)
        self.num_rows = start
        self.translation32 = translation.to(torch.float32)
        t = self.translation32.to(torch.float64)
        self.width = -(-(self.dim + 1) // _PAD) * _PAD
        self.levels = _levels(self.device, self.dim, self.num_rows)
        self.weights = {
            level.dtype: torch.zeros(
                self.num_rows, self.width, dtype=level.dtype, device=self.device
            )
            for level in self.levels
        }
        self.row_norm_max: list[float] = []
        self.offset_max: list[float] = []
        self.float64_error: list[tuple[float, float]] = []
        t_norm = float(t.norm())
        for (v, o, scale), rows in zip(self.exact, self.bounds):
            # s_j(h) = v_jᵀx + (o_j + v_jᵀt) with x = h − t. Adding one vector to every row of a
            # group, or one number to every offset, shifts all its scores of a sample alike and
            # changes no argmax: rows are centred and offsets end at 0 (a tighter bound).
            shifted = torch.addmv(o, v, t, alpha=scale)
            shifted -= shifted.max()
            centred = v - v.mean(dim=0)
            centred *= scale
            for weights in self.weights.values():
                weights[rows, : self.dim] = centred
                weights[rows, self.dim] = shifted
            self.row_norm_max.append(float(centred.norm(dim=1).max()))
            self.offset_max.append(float(shifted.abs().max()))
            del centred
            # rounding of the float64 transformation itself, against the original rows
            norm_max, offset_max = scale * float(v.norm(dim=1).max()), float(o.abs().max())
            self.float64_error.append((norm_max, 8 * U64 * (norm_max * t_norm + offset_max)))
        self.rows_needing_float64 = 0
        self._count_lock = threading.Lock()  # decide() may run on several threads at once

    def decide(self, features: torch.Tensor) -> list[torch.Tensor]:
        """Per group, the winning row index (int64) for each row of ``features`` (n×d)."""
        n = features.shape[0]
        out = [torch.empty(n, dtype=torch.int64, device=self.device) for _ in self.bounds]
        block = _SCORE_BLOCK if self.device.type == "cpu" else _DEVICE_SCORE_BLOCK
        step = max(1, block // max(1, self.num_rows))
        for start in range(0, n, step):
            stop = min(n, start + step)
            self._decide_block(features[start:stop], [o[start:stop] for o in out])
        return out

    def _augmented(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[h − t, 1, 0…] in float32 (n × width) and ‖h − t‖ per row."""
        x = torch.zeros(features.shape[0], self.width, dtype=torch.float32, device=self.device)
        if features.dtype == torch.float64:
            x[:, : self.dim] = features - self.translation32.to(torch.float64)
        else:
            torch.sub(features, self.translation32, out=x[:, : self.dim])
        x[:, self.dim] = 1.0
        norms = torch.linalg.vector_norm(x[:, : self.dim], dim=1)
        return x, norms

    def _decide_block(self, features: torch.Tensor, out: list[torch.Tensor]) -> None:
        x32, norms = self._augmented(features)
        norms = norms.to(torch.float64) * (1.0 + 1e-3)  # the float32 norm's own rounding
        pending = [None] * len(self.bounds)  # row indices still undecided, per group
        for depth, level in enumerate(self.levels):
            x = x32 if level.dtype == torch.float32 else x32.to(level.dtype)
            weights = self.weights[level.dtype]
            full = None
            if depth == 0:
                full = x @ weights.T  # every group in one GEMM
            for g, rows in enumerate(self.bounds):
                todo = pending[g]
                if todo is not None and len(todo) == 0:
                    continue
                if full is not None:
                    scores = full[:, rows]
                else:
                    scores = x[todo] @ weights[rows].T
                first, second, winners = _top_two(scores)
                margin = first.to(torch.float64) - second.to(torch.float64)
                row_norms = norms if todo is None else norms[todo]
                norm_max, float64_error = self.float64_error[g]
                bound = 2.0 * (
                    level.kappa * (self.row_norm_max[g] * row_norms + self.offset_max[g])
                    + 8 * U64 * norm_max * row_norms
                    + float64_error
                    + level.absolute
                )
                sure = margin > bound  # False for NaN/Inf: those rows go on
                if todo is None:
                    out[g][sure] = winners[sure]
                    pending[g] = torch.nonzero(~sure).flatten()
                else:
                    out[g][todo[sure]] = winners[sure]
                    pending[g] = todo[~sure]
        for g, todo in enumerate(pending):
            rows = torch.arange(features.shape[0], device=self.device) if todo is None else todo
            if len(rows) == 0:
                continue
            with self._count_lock:
                self.rows_needing_float64 += len(rows)
            v, o, scale = self.exact[g]
            exact = torch.addmm(o, features[rows].to(torch.float64), v.T, alpha=scale)
            out[g][rows] = exact.argmax(dim=1)
