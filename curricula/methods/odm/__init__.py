"""ODM, Online Data Mixing (Albalak et al., arXiv 2312.02406): one home.

* ``rule.py``: the official update rule (``SmoothedMeanWeightUpdater.group_update``), pure, with citations;
* ``method.py``: ``method: odm``, the rule driving an online mixture (``curricula.methods.online.OnlineMixture``).
"""

from curricula.methods.odm.method import ODM, ODMConfig
from curricula.methods.odm.rule import ODMRule

__all__ = ["ODM", "ODMConfig", "ODMRule"]
