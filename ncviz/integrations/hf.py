"""A Hugging Face ``TrainerCallback`` that records collapse at the end of training epochs.

Usage::

    from ncviz.integrations.hf import NcvizTrainerCallback

    trainer = Trainer(model, args, train_dataset=train, callbacks=[NcvizTrainerCallback("runs/r")])

Batches are the Trainer's dicts (``input_ids``, ``attention_mask``, ``labels``, …): the ``labels``
are the classes (one per sequence) and the other entries the model's inputs. The classifier is the
last ``nn.Linear`` unless named (``"classifier"`` for ``*ForSequenceClassification`` models).
Each recorded epoch captures the ``loaders`` given (default: the Trainer's train loader) and the
Trainer's logged values (loss, eval metrics) are kept beside the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ncviz.errors import OptionError
from ncviz.integrations import EpochRecording, numeric_values
from ncviz.record import AUTO

try:
    from transformers import TrainerCallback
except ImportError:
    TrainerCallback = None


if TrainerCallback is None:

    class NcvizTrainerCallback:  # type: ignore[no-redef]
        """Stand-in that explains what to install."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise OptionError(
                "NcvizTrainerCallback needs Hugging Face transformers: pip install transformers."
            )

else:

    class NcvizTrainerCallback(TrainerCallback):  # type: ignore[no-redef]
        """Record collapse every ``every_n_epochs`` epochs (and after the last one).

        Args:
            path, layers, classifier, recorder_kwargs: as for :class:`ncviz.Recorder`.
            loaders: ``{split: loader}``; default: ``{"train": the Trainer's train loader}``.
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
            self.recording = EpochRecording(
                path, layers, classifier, loaders, every_n_epochs, recorder_kwargs
            )
            self.recorder = self.recording.recorder

        @staticmethod
        def _epoch(state: Any) -> int:
            # state.epoch runs through (k, k + 1] during epoch k (0-based)
            return max(0, math.ceil(float(state.epoch or 0) - 1e-9) - 1)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs:
                self.recorder.log(self._epoch(state), **numeric_values(logs))

        def on_epoch_end(
            self,
            args: Any,
            state: Any,
            control: Any,
            model: Any = None,
            train_dataloader: Any = None,
            **kwargs: Any,
        ) -> None:
            epoch = self._epoch(state)
            last = epoch + 1 >= int(args.num_train_epochs)
            self.recording.epoch_end(model, epoch, last, train_dataloader)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.recorder.close()
