"""The pure curriculum core (numpy/pyarrow only; no torch, no transformers): plans, the block index table, the LFR
focus selection and block-fate analysis. The Hugging Face glue (sampler, callbacks, trainer) builds on this API."""

from curricula.curriculum.fates import FATES, block_fates, summarize_fates
from curricula.curriculum.index_table import SCHEMA, IndexTable
from curricula.curriculum.lfr import FocusReport, LFRPolicy, focus_mask, select_focus
from curricula.curriculum.plan import KINDS, Phase, PhaseEpoch, Plan, PlanError, n_dropped

__all__ = [
    "FATES",
    "KINDS",
    "SCHEMA",
    "FocusReport",
    "IndexTable",
    "LFRPolicy",
    "Phase",
    "PhaseEpoch",
    "Plan",
    "PlanError",
    "block_fates",
    "focus_mask",
    "n_dropped",
    "select_focus",
    "summarize_fates",
]
