"""Compute-equivalent replay (continual pretraining): a share of every global batch drawn from earlier stages' data.

The training rows are the current stage's ``new_rows`` blocks followed by the replay pool; the batches are a fixed
two-pool mixture (``FixedMixture``) in proportions (1 - replay, replay) with exact counts per batch, so replayed blocks
take slots of new ones and the batch size stays (Ibrahim et al. 2024; gpt-neox's replay).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.mixture import FixedMixture
from curricula.methods.registry import register
from curricula.methods.seam import DataInfo, MethodConfig, RunInfo


@register("replay")
@dataclass
class ReplayConfig(MethodConfig):
    """``method: replay``: compute-equivalent replay. The rows are the current stage's ``new_rows`` blocks followed by
    the replay pool (earlier stages' blocks); a share ``replay`` of every global batch comes from the replay pool."""

    replay: float = 0.0
    new_rows: int = 0
    stage: str = "new"
    seed: int | None = None

    def __post_init__(self):
        if not 0.0 <= float(self.replay) < 1.0:
            raise ConfigError(f"replay={self.replay}: the replayed share of a batch must be in [0, 1)")

    def build(self, data: DataInfo, run: RunInfo) -> FixedMixture:
        n = data.n_rows
        if not 0 < self.new_rows <= n:
            raise ConfigError(f"replay: new_rows={self.new_rows} must be in (0, {n}] (the current stage's blocks "
                              "come first in the training rows)")
        pools = [np.arange(self.new_rows, dtype=np.int64), np.arange(self.new_rows, n, dtype=np.int64)]
        weights = np.array([1.0 - self.replay, self.replay])
        return FixedMixture(data, run, weights, pools=pools, names=[self.stage, "replay"], seed=self.seed,
                            label="replay")
