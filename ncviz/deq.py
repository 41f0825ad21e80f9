"""A tiny deep equilibrium model (DEQ) and its explicit twin, for collapse in implicit models.

The DEQ's feature is the fixed point z* = tanh(A z* + U x + b) (Bai et al. 2019), read by a
linear ``classifier``; arXiv 2410.23391 studies neural collapse of such models and finds that they
mitigate minority collapse under imbalance. Here:

* A's spectral norm is kept at most ``spectral`` (< 1) by rescaling the free matrix in every
  forward pass, so z ↦ tanh(A z + U x + b) is a contraction (tanh is 1-Lipschitz) and the fixed
  point exists, is unique, and forward iteration converges geometrically;
* the forward pass iterates without gradients until ‖z_{k+1} − z_k‖ ≤ ``tol``·‖z_{k+1}‖ (per
  batch, the largest relative step) or ``max_iter`` steps, then takes one more step with
  gradients: truncated ("Jacobian-free", Fung et al. 2022) backpropagation;
* the fixed point passes through the module ``equilibrium`` (an identity), so hooks, the
  Recorder and ``ncviz analyze`` read z* as the layer ``equilibrium`` (and, as the
  classifier's input, ``classifier:input``).

>>> import torch
>>> deq = TinyDEQ(in_features=4, width=8, num_classes=3)
>>> logits = deq(torch.randn(5, 4))
>>> logits.shape, deq.last_converged, deq.last_iterations < deq.max_iter
(torch.Size([5, 3]), True, True)
"""

from __future__ import annotations

import torch
from torch import nn


class TinyDEQ(nn.Module):
    """z* = tanh(A z* + U x + b) solved by fixed-point iteration, then ``classifier``(z*)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int = 64,
        spectral: float = 0.9,
        max_iter: int = 100,
        tol: float = 1e-5,
    ) -> None:
        super().__init__()
        if not 0 < spectral < 1:
            raise ValueError(f"spectral must lie in (0, 1) for a contraction, got {spectral}.")
        self.spectral, self.max_iter, self.tol = spectral, max_iter, tol
        self.flatten = nn.Flatten()
        self.inject = nn.Linear(in_features, width)  # U x + b
        self.mixing = nn.Linear(width, width, bias=False)  # A before rescaling
        self.equilibrium = nn.Identity()  # z*: the hookable feature
        self.classifier = nn.Linear(width, num_classes)
        self.last_iterations = 0
        self.last_residual = float("nan")
        self.last_converged = False

    def mixing_matrix(self) -> torch.Tensor:
        """A = M · min(1, spectral/‖M‖₂): spectral norm at most ``spectral``."""
        weight = self.mixing.weight
        norm = torch.linalg.matrix_norm(weight, ord=2)
        return weight * torch.clamp(self.spectral / norm, max=1.0)

    def fixed_point(self, x: torch.Tensor, max_iter: int | None = None) -> torch.Tensor:
        """z* for a batch (with one differentiable step when gradients are on)."""
        injected = self.inject(self.flatten(x))
        mixing = self.mixing_matrix()
        steps = self.max_iter if max_iter is None else max_iter
        with torch.no_grad():
            z = torch.zeros_like(injected)
            residual, iterations = float("inf"), 0
            while iterations < steps:
                iterations += 1
                new = torch.tanh(z @ mixing.T + injected)
                change = (new - z).norm(dim=1) / new.norm(dim=1).clamp(min=1e-12)
                z = new
                residual = float(change.max()) if len(change) else 0.0
                if residual <= self.tol:
                    break
        self.last_iterations, self.last_residual = iterations, residual
        self.last_converged = residual <= self.tol
        if torch.is_grad_enabled():
            z = torch.tanh(z.detach() @ mixing.T + injected)  # truncated backprop: one step
        return z

    def forward(self, x: torch.Tensor, max_iter: int | None = None) -> torch.Tensor:
        return self.classifier(self.equilibrium(self.fixed_point(x, max_iter)))
