"""DoReMi's pipeline config (``curricula/methods/doremi/pipeline.py``): round 0's baseline weights mean what a
mixture's sampler means by them."""

import numpy as np
import pytest

from curricula.errors import CurriculaError
from curricula.methods.doremi.pipeline import baseline_weights
from curricula.mixing.weights import resolve_weights


def capped_meta():
    """Three domains capped at 500 blocks each; their source token counts differ 1:2:7."""
    domains = {n: {"blocks": 500, "tokens": t} for n, t in zip("abc", (100_000, 200_000, 700_000))}
    return {"domain_names": ["a", "b", "c"], "splits": {"train": {"domains": domains}}}


def test_token_proportional_is_by_the_packed_blocks_as_the_sampler_draws_them():
    meta = capped_meta()
    np.testing.assert_allclose(baseline_weights("token_proportional", meta), [1 / 3] * 3)
    np.testing.assert_array_equal(baseline_weights("token_proportional", meta),
                                  resolve_weights("token_proportional", meta["domain_names"], np.full(3, 500.0)))
    meta["splits"]["train"]["domains"]["c"]["blocks"] = 2000
    np.testing.assert_allclose(baseline_weights("token_proportional", meta), [1 / 6, 1 / 6, 2 / 3])


def test_explicit_baseline_weights_are_checked():
    np.testing.assert_allclose(baseline_weights([0.2, 0.3, 0.5], capped_meta()), [0.2, 0.3, 0.5])
    with pytest.raises(CurriculaError, match="baseline_weights.*sum to 0.5"):
        baseline_weights([0.2, 0.3], capped_meta())
    with pytest.raises(CurriculaError, match="baseline_weights"):
        baseline_weights([0.2, 0.8], capped_meta())
