"""An architecture a lab registers with ncviz through the ``ncviz.architectures`` entry point."""

from torch import nn


class LabNet(nn.Sequential):
    """MLP for 8×8 digits: ``{"name": "labnet", "kwargs": {"width": 64}}``."""

    def __init__(self, width: int = 64, num_classes: int = 10) -> None:
        super().__init__(
            nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, num_classes)
        )
