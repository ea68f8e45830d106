"""LFR (Learn, Focus, Review; Prakriya et al., arXiv 2409.06131): one home.

* ``method.py``: ``LFRCurriculum`` on the seam and its recipe config ``LFRConfig`` (``method: lfr``);
* ``plan.py``: the declarative plan of learn / focus / review phases;
* ``policy.py``: **the Focus decision** (``LFRPolicy.eligible_for``, ``select_focus``);
* ``index_table.py``: every block's latest loss, memory-mapped Arrow;
* ``fates.py``: learned / unlearned / forgotten blocks from the curriculum log ("multiple descent").
"""

from curricula.methods.lfr.fates import FATES, block_fates, summarize_fates
from curricula.methods.lfr.index_table import SCHEMA, IndexTable
from curricula.methods.lfr.method import TABLE_FILE, LFRConfig, LFRCurriculum
from curricula.methods.lfr.plan import KINDS, Phase, PhaseEpoch, Plan, PlanError, n_dropped
from curricula.methods.lfr.policy import FocusReport, LFRPolicy, focus_mask, select_focus

__all__ = ["FATES", "KINDS", "SCHEMA", "TABLE_FILE", "FocusReport", "IndexTable", "LFRConfig", "LFRCurriculum",
           "LFRPolicy", "Phase", "PhaseEpoch", "Plan", "PlanError", "block_fates", "focus_mask", "n_dropped",
           "select_focus", "summarize_fates"]
