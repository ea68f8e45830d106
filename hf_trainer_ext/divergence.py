"""The non-finite / exploding loss policy: stop (or warn) with where it happened and the checkpoint to go back to."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

from curricula.errors import DivergenceError

logger = logging.getLogger(__name__)


class DivergenceMonitor:
    """``check`` is called with the same numbers on every process (gathered losses), so all stop together.

    ``max_loss`` defaults to 3 x ln(vocab): far worse than guessing every token uniformly. ``last_checkpoint`` names
    the newest complete checkpoint when it fires."""

    def __init__(self, policy: str = "stop", max_nonfinite_share: float = 1.0, max_loss: float | None = None,
                 vocab_size: int | None = None, last_checkpoint: Callable[[], Path | None] = lambda: None):
        self.policy, self.max_share = policy, max_nonfinite_share
        self.max_loss, self.why = max_loss, ""
        if max_loss is None and vocab_size:
            self.max_loss, self.why = 3.0 * math.log(vocab_size), ", 3 x ln(vocab): far worse than guessing uniformly"
        self.last_checkpoint = last_checkpoint

    @classmethod
    def from_args(cls, args, model, last_checkpoint: Callable[[], Path | None]) -> "DivergenceMonitor":
        """``--nonfinite_policy``, ``--max_nonfinite_share``, ``--max_loss``; the default bound from the model's
        vocabulary."""
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        return cls(getattr(args, "nonfinite_policy", "stop"), getattr(args, "max_nonfinite_share", 1.0),
                   getattr(args, "max_loss", None), vocab, last_checkpoint)

    def check(self, where: str, n: int, n_bad: int, mean_loss: float) -> None:
        if n == 0:
            return
        share = n_bad / n
        problem = None
        if share > self.max_share:
            problem = (f"{n_bad} of {n} block losses are non-finite (NaN/inf; {share:.1%} > max_nonfinite_share "
                       f"{self.max_share:g})")
        elif self.max_loss is not None and mean_loss > self.max_loss:
            problem = f"the mean block loss is {mean_loss:.4g} (> max_loss {self.max_loss:.4g}{self.why})"
        if problem is None:
            return
        last = self.last_checkpoint()
        message = (f"training diverged in {where}: {problem}. Typical causes: a learning rate too high, a NaN in the "
                   "weights or the data. "
                   + (f"The last complete checkpoint is {last}: lower the learning rate and resume from it"
                      if last is not None else "No checkpoint was saved: lower the learning rate and start again")
                   + "; --nonfinite_policy warn continues anyway.")
        if self.policy == "stop":
            raise DivergenceError(message)
        logger.warning(message)
