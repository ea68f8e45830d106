import json
import os
import shutil
import socket

import pytest

from curricula.data.tokenizers import (
    TokenizerError,
    gpt2_files,
    gpt2_tokenizer,
    load_tokenizer,
    train_bpe,
    write_tiktoken_ranks,
)

R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
MIXED = "Hello, world! 12345 числа 日本語 🤖  tabs\tand\nnewlines"


def test_gpt2_hello_world_with_network_blocked(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(no_network):  # the fixture really blocks
        socket.create_connection(("example.org", 443))
    tok = load_tokenizer("gpt2")
    assert tok.encode_batch(["hello world"]) == [[31373, 995]]
    assert tok.eos_id == 50256 and tok.vocab_size == 50257
    assert tok.decode([31373, 995]) == "hello world"
    assert not (tmp_path / "empty-cache").exists() or not os.listdir(tmp_path / "empty-cache")


def test_gpt2_files_are_openais():
    import hashlib

    vocab_bpe, encoder_json = gpt2_files()
    assert hashlib.sha256(vocab_bpe.read_bytes()).hexdigest() == "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
    assert hashlib.sha256(encoder_json.read_bytes()).hexdigest() == "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


def test_same_vocabulary_same_identity_on_every_path(tmp_path, no_network):
    import hashlib

    from transformers import GPT2TokenizerFast

    tk = gpt2_tokenizer()
    ranks_file = tmp_path / "r50k_base.tiktoken"
    write_tiktoken_ranks(tk._enc._mergeable_ranks, ranks_file)
    assert hashlib.sha256(ranks_file.read_bytes()).hexdigest() == R50K_SHA256
    from_file = load_tokenizer(str(ranks_file))
    from_prefixed = load_tokenizer(f"tiktoken:{ranks_file}#r50k_base")

    hf_dir = tmp_path / "hf-gpt2"
    hf_dir.mkdir()
    vocab_bpe, encoder_json = gpt2_files()
    shutil.copy(encoder_json, hf_dir / "vocab.json")
    shutil.copy(vocab_bpe, hf_dir / "merges.txt")
    GPT2TokenizerFast.from_pretrained(str(hf_dir)).save_pretrained(str(hf_dir))
    hf = load_tokenizer(hf_dir)

    ids = tk.encode_batch([MIXED])
    for other in (from_file, from_prefixed, hf):
        assert other.encode_batch([MIXED]) == ids
        assert other.identity.vocab_sha256 == tk.identity.vocab_sha256
        assert other.eos_id == 50256


@pytest.mark.parametrize("spec", ["gpt-2", "cl100k_base", "no/such/folder"])
def test_unknown_tokenizer_names_the_choices(spec):
    with pytest.raises(TokenizerError, match="unknown tokenizer.*gpt2.*tiktoken:PATH"):
        load_tokenizer(spec)


def test_ranks_file_with_unknown_encoding_name(tmp_path):
    f = tmp_path / "mine.tiktoken"
    write_tiktoken_ranks({b"a": 0, b"b": 1}, f)
    with pytest.raises(TokenizerError, match="cannot tell which tiktoken encoding"):
        load_tokenizer(str(f))


def test_folder_without_tokenizer_json(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_train_bpe_roundtrip_and_determinism(tmp_path):
    from transformers import AutoTokenizer

    from curricula.data.corpus import sample_documents

    texts = [d["text"] for d, _ in zip(sample_documents(["prose", "code"]), range(200))]
    a = train_bpe(texts, tmp_path / "a", vocab_size=512)
    b = train_bpe(texts, tmp_path / "b", vocab_size=512)
    assert a.vocab_size == 512
    assert a.identity.vocab_sha256 == b.identity.vocab_sha256
    ids = a.encode_batch([MIXED])[0]
    assert a.decode(ids) == MIXED
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "a"))
    assert hf(MIXED, add_special_tokens=False)["input_ids"] == ids
    assert hf.eos_token == "<|endoftext|>" and hf.eos_token_id == a.eos_id
    assert json.loads((tmp_path / "a" / "tokenizer_config.json").read_text())["eos_token"] == "<|endoftext|>"
