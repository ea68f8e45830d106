"""Every method on the one seam (``seam.Curriculum``), each in its own home, registered by name for recipes.

=====================  ==================================================  =============================================
method                 home                                                what it does
=====================  ==================================================  =============================================
``lfr``                ``lfr/`` (method, plan, policy, index_table, fates)  Learn, Focus, Review over per-block losses
``mixture``            ``mixture.py``                                       fixed domain weights, exact counts per batch
``replay``             ``continual/replay.py``                              compute-equivalent replay of earlier stages
``group_dro``          ``doremi/proxy.py``                                  DoReMi's proxy (Group DRO vs a reference)
``doremi_online``      ``doremi/online.py``                                 DoReMi's weights learned by the main run
``odm``                ``odm/`` (rule, method)                              ODM: smoothed exponentiated training loss
``ado``                ``ado/`` (rule, method)                              ADO: per-domain scaling-law fits, credit
``aioli``              ``aioli/`` (rule, method)                            Aioli: mixing law from held-out loss rounds
``doremi`` (pipeline)  ``doremi/pipeline.py``                               reference → proxy → main, iterated rounds
``continual`` (pipe.)  ``continual/pipeline.py``                            dataset stages, re-warm/re-decay, replay
=====================  ==================================================  =============================================

Adding a method inside the package: a folder (or file) here with a ``MethodConfig`` decorated ``@register("name")``
whose ``build`` returns a ``Curriculum``, and one import line below. Outside the package: ``method:
package.module:ConfigClass`` in a recipe, or an entry point in the group ``curricula.methods`` (``registry``).
"""

from curricula.methods.seam import (Curriculum, DataInfo, EpochLabel, EpochRecords, EvalStats, MethodConfig,
                                    MethodError, NodeShared, Report, RunInfo, StepStats)
from curricula.methods.registry import (ENTRY_POINT_GROUP, METHODS, PIPELINES, is_pipeline, load_recipe, lookup,
                                        method_config, register, register_pipeline)

# the bundled methods (each import registers its names)
from curricula.methods.mixture import FixedMixture, MixtureConfig
from curricula.methods.lfr import LFRConfig, LFRCurriculum
from curricula.methods.continual import ContinualError, ContinualRecipe, ReplayConfig, Stage, stage_schedule
from curricula.methods.doremi import (DoReMiOnline, DoReMiOnlineConfig, DoReMiRecipe, GroupDROConfig, GroupDROProxy,
                                      baseline_weights)
from curricula.methods.odm import ODM, ODMConfig
from curricula.methods.ado import ADO, ADOConfig
from curricula.methods.aioli import Aioli, AioliConfig

__all__ = [
    "ADO", "ADOConfig", "Aioli", "AioliConfig", "ODM", "ODMConfig",
    "ENTRY_POINT_GROUP", "METHODS", "PIPELINES", "ContinualError", "ContinualRecipe", "Curriculum", "DataInfo",
    "DoReMiOnline", "DoReMiOnlineConfig", "DoReMiRecipe", "EpochLabel", "EpochRecords", "EvalStats", "FixedMixture",
    "GroupDROConfig", "GroupDROProxy", "LFRConfig", "LFRCurriculum", "MethodConfig", "MethodError", "MixtureConfig",
    "NodeShared", "ReplayConfig", "Report", "RunInfo", "Stage", "StepStats", "baseline_weights", "is_pipeline",
    "load_recipe", "lookup", "method_config", "register", "register_pipeline", "stage_schedule",
]
