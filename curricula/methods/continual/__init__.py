"""Continual pretraining (Ibrahim et al. 2024): one home.

* ``pipeline.py``: the recipe (``method: continual``): dataset stages D0 → D1 → …, their LR schedules (re-warm and
  re-decay, or one infinite schedule; the schedules themselves are ``curricula.optim.schedules``) and replay shares.
  Its runner is ``hf_trainer_ext.pipelines.continual``;
* ``replay.py``: compute-equivalent replay within a stage (``method: replay``).
"""

from curricula.methods.continual.pipeline import ContinualError, ContinualRecipe, Stage, stage_schedule
from curricula.methods.continual.replay import ReplayConfig

__all__ = ["ContinualError", "ContinualRecipe", "ReplayConfig", "Stage", "stage_schedule"]
