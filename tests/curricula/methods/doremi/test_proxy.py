"""DoReMi's proxy run (``curricula/methods/doremi/proxy.py``, Group DRO against a reference) on the trainer: a cached
and a live reference give the same weights. Its two-process run is in tests/integration/test_distributed.py."""

import json

import numpy as np

from curricula.methods.online import read_weights_history

IDENTITY = {"name": "synthetic", "vocab_sha256": "0" * 64}  # the reference fixture's tokenizer identity


def test_cached_and_live_reference_give_the_same_weights(reference, tmp_path, proxy):
    model, cache = reference
    cached = proxy(tmp_path / "cached", reference_losses=cache)
    cached.train()
    live = proxy(tmp_path / "live", reference_model=model)
    live.train()
    hist = {r: read_weights_history(tmp_path / r / "doremi" / "weights_history.parquet") for r in ("cached", "live")}
    np.testing.assert_allclose(hist["cached"]["weights"], hist["live"]["weights"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(cached.curriculum.dro.average, live.curriculum.dro.average, rtol=0, atol=1e-9)
    assert len(hist["cached"]["step"]) == 8 and not np.allclose(cached.curriculum.dro.average, 1 / 3)  # they moved
    doc = json.loads((tmp_path / "cached" / "doremi" / "domain_weights.json").read_text())
    assert doc["tokenizer"]["vocab_sha256"] == IDENTITY["vocab_sha256"]
    assert (tmp_path / "cached" / "doremi" / "domain_weights.png").stat().st_size > 5000
