"""A Lightning ``Callback`` that records collapse at the end of training epochs.

Usage::

    from ncviz.integrations.lightning import NcvizCallback

    trainer = lightning.Trainer(callbacks=[NcvizCallback("runs/my-run", classifier="net.fc")])

Each recorded epoch captures the ``loaders`` given (``{"train": dl, "test": dl2}``; default: the
trainer's own train loader — prefer a loader without augmentation) through the ``LightningModule``
(layer names as in ``pl_module.named_modules()``, e.g. ``"net.fc"``), and logs the trainer's
scalar ``callback_metrics`` (losses, accuracies) beside the metrics. Under DDP every rank takes
part and rank 0 writes; use a sampler without padding so no sample is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ncviz.errors import OptionError
from ncviz.integrations import EpochRecording, numeric_values
from ncviz.record import AUTO

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError:
        Callback = None


if Callback is None:

    class NcvizCallback:  # type: ignore[no-redef]
        """Stand-in that explains what to install."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise OptionError("NcvizCallback needs Lightning: pip install lightning.")

else:

    class NcvizCallback(Callback):  # type: ignore[no-redef]
        """Record collapse every ``every_n_epochs`` epochs (and after the last one).

        Args:
            path, layers, classifier, recorder_kwargs: as for :class:`ncviz.Recorder`.
            loaders: ``{split: loader}``; default: ``{"train": trainer.train_dataloader}``.
            every_n_epochs: record epochs 0, n, 2n, … and the last epoch.
        """

        def __init__(
            self,
            path: str | Path,
            layers: Sequence[str] | str = AUTO,
            classifier: str | None = AUTO,
            *,
            loaders: Mapping[str, Iterable[Any]] | None = None,
            every_n_epochs: int = 1,
            **recorder_kwargs: Any,
        ) -> None:
            super().__init__()
            self.recording = EpochRecording(
                path, layers, classifier, loaders, every_n_epochs, recorder_kwargs
            )
            self.recorder = self.recording.recorder

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch = int(trainer.current_epoch)
            self.recorder.log(epoch, **numeric_values(trainer.callback_metrics))
            last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
            self.recording.epoch_end(pl_module, epoch, last, trainer.train_dataloader)

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self.recorder.close()
