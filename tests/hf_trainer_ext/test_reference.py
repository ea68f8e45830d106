"""Reference-model losses for DoReMi (``hf_trainer_ext/reference.py``): the cache equals the reference's forward; a
reference for another tokenizer or another data size is refused, and so is a reference for a method that uses none."""

import numpy as np
import pytest
import torch

from curricula.errors import ConfigError
from hf_trainer_ext import CurriculumTrainer
from hf_trainer_ext.reference import ReferenceLosses, ReferenceMismatchError


def test_cached_losses_equal_the_reference_forward(reference, blocks):
    model, cache = reference
    ds = blocks()
    cached = ReferenceLosses(cache, len(ds), 32).take(np.arange(5))
    with torch.no_grad():
        x = torch.tensor(np.asarray(ds.with_format("numpy")[:5]["input_ids"]), dtype=torch.long)
        logp = torch.log_softmax(model(input_ids=x).logits.float(), -1)
        expected = -logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
    np.testing.assert_allclose(cached[:, :-1], expected.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(cached[:, -1] == 0)


def test_reference_with_another_tokenizer_is_refused(reference, tmp_path):
    _, cache = reference
    other = {"name": "gpt2", "vocab_sha256": "f" * 64}
    with pytest.raises(ReferenceMismatchError, match="token ids would not mean the same thing"):
        ReferenceLosses(cache, 96, 32, tokenizer_identity=other)
    with pytest.raises(ReferenceMismatchError, match="cover 96 blocks of 32 tokens"):
        ReferenceLosses(cache, 90, 32)


def test_reference_model_folder_with_another_tokenizer_is_refused(tmp_path, proxy, synthetic_docs, tiny_gpt2):
    from curricula.data.tokenizers import train_bpe

    folder = tmp_path / "ref"
    tiny_gpt2().save_pretrained(folder)
    train_bpe([d["text"] for d in synthetic_docs(n_per_domain=10)], folder, vocab_size=300)
    with pytest.raises(ReferenceMismatchError, match="the reference model .* token ids would not mean the same thing"):
        proxy(tmp_path / "run", reference_model=str(folder))


def test_a_reference_for_a_method_that_uses_none_is_refused(tmp_path, blocks, targs, tiny_gpt2):
    with pytest.raises(ConfigError, match="does not use one; drop reference_losses"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, domain_weights="uniform"),
                          train_dataset=blocks(), reference_model=tiny_gpt2())
