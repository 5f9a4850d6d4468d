"""Model selection and early stopping on the validation split (never on test).

With ``config.model_selection='valid'`` the trainer evaluates the validation split after every
epoch, keeps the state of the epoch with the lowest validation criterion (the negative ELBO
of a VAE, the loss of an autoencoder) in ``workdir/best_checkpoints``, and, with
``config.early_stopping_patience`` N > 0, stops once N epochs in a row brought no
improvement. The final metrics, the figures and `experiments.evaluate` then use that state.
The test split is not looked at during such a run: epochs are evaluated on validation only,
and the selected state on test once, at the end.

The record is derived, not stored: a resumed run rebuilds it from the ``valid`` lines of
``metrics.jsonl`` up to the step it resumes from, so it needs no state of its own.
"""

from __future__ import annotations

import dataclasses
import math

from vae_jax.training import workdir as workdir_lib

CHECKPOINT_DIR = "best_checkpoints"
MODES = ("last", "valid")


def selects_on_validation(config) -> bool:
    """Whether ``config`` keeps the best validation epoch (``model_selection='valid'``)."""
    return config.model_selection == "valid"


def criterion(metrics: dict[str, float]) -> float:
    """The validation number to minimise: ``neg_elbo`` where there is one, else ``loss``."""
    return metrics["neg_elbo"] if "neg_elbo" in metrics else metrics["loss"]


@dataclasses.dataclass
class BestEpoch:
    """The best validation epoch so far (1-based; 0 before any) and its criterion."""

    patience: int = 0
    epoch: int = 0
    value: float = math.inf

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Records ``epoch``'s validation metrics; True when it is the new best.

        A non-finite criterion never counts as an improvement."""
        value = criterion(metrics)
        if math.isfinite(value) and value < self.value:
            self.epoch, self.value = epoch, value
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        """Whether ``patience`` epochs up to ``epoch`` went by without improvement."""
        return self.patience > 0 and epoch - self.epoch >= self.patience

    @classmethod
    def from_records(cls, records: list[dict], last_step: int, patience: int) -> "BestEpoch":
        """The record of the ``valid`` records of a ``metrics.jsonl`` (`workdir.read_records`) up
        to ``last_step``."""
        best = cls(patience)
        for record in records:
            if record["split"] == "valid" and record["step"] <= last_step:
                best.update(int(record["epoch"]), record)
        return best

    @classmethod
    def from_log(cls, path: str, last_step: int, patience: int) -> "BestEpoch":
        """`from_records` of the ``metrics.jsonl`` at ``path``."""
        return cls.from_records(workdir_lib.read_records(path), last_step, patience)
