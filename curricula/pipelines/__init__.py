"""Multi-run pipelines' recipes (pure): DoReMi's reference/proxy/main runs and continual pretraining's stages.
Their runners, which train models, are in ``hf_trainer_ext.pipelines``."""

from curricula.pipelines.continual import ContinualError, ContinualRecipe, Stage, stage_schedule
from curricula.pipelines.doremi import DoReMiRecipe, baseline_weights

PIPELINES = {"doremi": DoReMiRecipe, "continual": ContinualRecipe}

__all__ = ["PIPELINES", "ContinualError", "ContinualRecipe", "DoReMiRecipe", "Stage", "baseline_weights",
           "stage_schedule"]
