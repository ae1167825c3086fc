"""Lightning's rich progress bar with epochs counted from 1 (imported only where lightning is)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class EpochBar(RichProgressBar):
    """Lightning's bar says "Epoch 1/1" for the second of two epochs; this one "Epoch 2/2".

    At module level so that ``ddp_spawn`` can pickle it with the trainer.
    """

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{total}" if total and total > 0 else "")
        # as Lightning pads it: the bar does not jump when the validation bar takes its place
        return f"{text:{len(self.validation_description)}}"
