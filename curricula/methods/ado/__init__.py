"""ADO, Adaptive Data Optimization (Jiang et al., arXiv 2410.11820): one home.

* ``rule.py``: the official selector (per-domain power-law fits on the smoothed training loss, the credit-weighted
  policy), pure, with citations; its history bounded, its refits optionally in a background thread;
* ``method.py``: ``method: ado``, the rule driving an online mixture (``curricula.methods.online.OnlineMixture``).
"""

from curricula.methods.ado.method import ADO, ADOConfig
from curricula.methods.ado.rule import ADORule, SmoothedLossHistory, fit_scaling_law

__all__ = ["ADO", "ADOConfig", "ADORule", "SmoothedLossHistory", "fit_scaling_law"]
