"""Aioli (Chen et al., arXiv 2411.05735): one home.

* ``rule.py``: the official LearnParams estimate of the mixing matrix A from held-out loss differences and the
  exponentiated-gradient update of the proportions, pure, with citations;
* ``method.py``: ``method: aioli``, the round schedule (perturbed LearnParams mixtures, held-out measurements through
  ``wants_eval`` / ``observe_eval``, the mixed phase) on an online mixture (``curricula.methods.online``).
"""

from curricula.methods.aioli.method import Aioli, AioliConfig
from curricula.methods.aioli.rule import AioliRule, lp_mixture

__all__ = ["Aioli", "AioliConfig", "AioliRule", "lp_mixture"]
