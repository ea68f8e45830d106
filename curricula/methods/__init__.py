"""Every method on the one seam (``base.Curriculum``), registered by name for recipes (``method: <name>``).

Adding a method: one new file here with a ``MethodConfig`` decorated ``@register("name")`` that builds a
``Curriculum``, and one import line below.
"""

from curricula.methods.base import (
    METHODS,
    Curriculum,
    DataInfo,
    EpochRecords,
    MethodConfig,
    MethodError,
    Report,
    RunInfo,
    StepStats,
    method_config,
    register,
)
from curricula.methods.lfr import LFRConfig, LFRCurriculum  # noqa: F401  (registers "lfr")
from curricula.methods.mixture import FixedMixture, MixtureConfig, ReplayConfig, resolve_weights  # noqa: F401
from curricula.methods.group_dro import GroupDROConfig, GroupDROProxy  # noqa: F401
from curricula.methods.doremi_online import DoReMiOnline, DoReMiOnlineConfig  # noqa: F401

__all__ = [
    "METHODS",
    "Curriculum",
    "DataInfo",
    "DoReMiOnline",
    "DoReMiOnlineConfig",
    "EpochRecords",
    "FixedMixture",
    "GroupDROConfig",
    "GroupDROProxy",
    "LFRConfig",
    "LFRCurriculum",
    "MethodConfig",
    "MethodError",
    "MixtureConfig",
    "ReplayConfig",
    "Report",
    "RunInfo",
    "StepStats",
    "method_config",
    "register",
    "resolve_weights",
]
