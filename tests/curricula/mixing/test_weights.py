"""The domain weights file (``curricula/mixing/weights.py``): round trip by name, errors, the official code's plain
format, the L1 change. Pure numpy; fast."""

import json

import numpy as np
import pytest

from curricula.mixing.weights import WeightsError, l1_change, read_weights_json, weights_json, write_weights_json


TOK = {"name": "gpt2", "kind": "tiktoken", "vocab_size": 50257, "eos_id": 50256, "vocab_sha256": "a" * 64}


def test_weights_json_round_trip_reorders_by_name(tmp_path):
    content = weights_json([0.2, 0.5, 0.3], ["web", "code", "books"], TOK, {"steps": 100, "eta": 1.0})
    assert content["weights"] == {"web": 0.2, "code": 0.5, "books": 0.3}
    assert content["tokenizer"]["vocab_sha256"] == TOK["vocab_sha256"] and content["extra"]["steps"] == 100
    path = write_weights_json(tmp_path / "domain_weights.json", content)
    w = read_weights_json(path, ["books", "web", "code"], tokenizer_identity=TOK)
    assert np.array_equal(w, [0.3, 0.2, 0.5])


def test_read_weights_json_errors(tmp_path):
    path = write_weights_json(tmp_path / "w.json", weights_json([0.2, 0.5, 0.3], ["web", "code", "books"], TOK))
    with pytest.raises(WeightsError, match=r"other domains than this run \(missing \['wiki'\]; extra \['books'\]\)"):
        read_weights_json(path, ["web", "code", "wiki"])
    with pytest.raises(WeightsError, match=r"missing \['wiki'\]\)"):
        read_weights_json(path, ["web", "code", "books", "wiki"])
    other = dict(TOK, name="my-bpe-8k", vocab_sha256="b" * 64)
    with pytest.raises(
        WeightsError,
        match=r"computed with tokenizer 'gpt2' \(vocab_sha256 a{64}\), this run uses 'my-bpe-8k' \(vocab_sha256 "
        r"b{64}\); learned domain weights are tokenizer-specific",
    ):
        read_weights_json(path, ["web", "code", "books"], tokenizer_identity=other)


def test_read_plain_official_format(tmp_path):
    path = tmp_path / "avg_domain_weights.json"
    path.write_text(json.dumps({"a": 0.25, "b": 0.75}))
    assert np.array_equal(read_weights_json(path, ["b", "a"]), [0.75, 0.25])
    with pytest.raises(WeightsError, match=r"records no tokenizer.*pass tokenizer_identity=None"):
        read_weights_json(path, ["a", "b"], tokenizer_identity=TOK)


def test_l1_change():
    assert l1_change([0.5, 0.5], [0.25, 0.75]) == 0.5
    with pytest.raises(WeightsError, match=r"same length"):
        l1_change([0.5, 0.5], [1.0])
