"""DoReMi (Xie et al., NeurIPS 2023): one home.

* ``update.py``: the Group-DRO weight update (exponentiated gradient on the clipped excess loss, smoothed);
* ``proxy.py``: the proxy run (``method: group_dro``): sampling fixed, loss weighted by alpha;
* ``online.py``: DoReMi in one run (``method: doremi_online``): the main model's own excess loss drives sampling;
* ``pipeline.py``: the multi-run recipe (``method: doremi``): reference → proxy → main, iterated. Its runner, which
  trains models, is ``hf_trainer_ext.pipelines.doremi``; the reference's cached losses ``hf_trainer_ext.reference``.
"""

from curricula.methods.doremi.online import DoReMiOnline, DoReMiOnlineConfig
from curricula.methods.doremi.pipeline import DoReMiRecipe, baseline_weights
from curricula.methods.doremi.proxy import GroupDROConfig, GroupDROProxy
from curricula.methods.doremi.update import DoReMiConfig, DoReMiError, GroupDROOptions, GroupDROWeights

__all__ = ["DoReMiConfig", "DoReMiError", "DoReMiOnline", "DoReMiOnlineConfig", "DoReMiRecipe", "GroupDROConfig",
           "GroupDROOptions", "GroupDROProxy", "GroupDROWeights", "baseline_weights"]
