"""``push_run`` against a local Hub stand-in on 127.0.0.1 (tests/hub_standin.py): what arrives, the card's front
matter, pulling back with ``snapshot_download`` + ``from_pretrained``, and the token never leaking."""

from __future__ import annotations

import json
import logging
import os
import secrets
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from curricula.curriculum.log import write_epoch_log
from curricula.curriculum.plan import PhaseEpoch
from hf_trainer_ext import hub as hubmod
from hf_trainer_ext.hub import HubPushError, collect_run_files, push_run
from tests.hub_standin import HubStandIn

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "def add(a, b):\n    return a + b",
    "a curriculum orders the data a model sees",
    "forgotten blocks come back in the review phase",
] * 20


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"\x00\xff\x00\x00"  # one filter byte + one RGB pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from curricula.data.tokenizers import train_bpe

    out = tmp_path_factory.mktemp("tok")
    train_bpe(TEXTS, out, vocab_size=300, min_frequency=1)
    return out


@pytest.fixture
def run_dir(tmp_path, tokenizer_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    run = tmp_path / "run"
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(cfg).save_pretrained(run)
    for f in tokenizer_dir.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    log = run / "curriculum"
    n = 8
    write_epoch_log(log, PhaseEpoch(index=0, phase_index=0, kind="learn", epoch_in_phase=0),
                    {"block_id": np.arange(n), "domain_id": np.arange(n) % 2, "step": np.arange(n) // 4 + 1,
                     "loss": np.linspace(3.0, 2.0, n).astype(np.float32)})
    (log / "run.json").write_text(json.dumps({
        "plan": {"name": "lfr", "params": {}, "phases": [{"kind": "learn", "epochs": 1}]}, "seed": 0,
        "global_batch": 4, "n_blocks": n, "domain_names": ["prose", "code"],
        "epochs": [{"index": 0, "kind": "learn", "phase_index": 0, "drop_percent": None, "blocks": n, "steps": 2}],
        "total_steps": 2}))
    (log / "focus_reports.jsonl").write_text("")
    (log / "run.json.tmp").write_text("{}")
    (run / "analysis").mkdir()
    (run / "analysis" / "domain_ppl_over_training.png").write_bytes(_png())
    (run / "analysis" / "report.md").write_text("# report\n")
    (run / "analysis" / "summary.json").write_text(json.dumps(
        {"summary": {"blocks": n, "fractions": {"learned": 0.75, "unlearned": 0.125, "forgotten": 0.125},
                     "forgotten_multiple_share": 0.0}}))
    (run / "doremi").mkdir()
    (run / "doremi" / "domain_weights.json").write_text(json.dumps(
        {"format": "x", "domains": ["prose", "code"], "weights": {"prose": 0.625, "code": 0.375}}))
    (run / "data.json").write_text(json.dumps({"packed": "/home/someone/secret/path", "split": "train"}))
    (run / "training_args.bin").write_bytes(b"\x00" * 8)
    (run / "checkpoint-2").mkdir()
    (run / "checkpoint-2" / "model.safetensors").write_bytes(b"x")
    return run


@pytest.fixture
def online(monkeypatch):
    """This test only: hub online (conftest sets HF_HUB_OFFLINE=1, read at import), Xet off, no ambient token."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.fixture
def hub():
    server = HubStandIn().start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.thread.is_alive()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_push_and_pull_back(run_dir, hub, online, tmp_path, caplog, capsys):
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM, AutoTokenizer

    caplog.set_level(logging.DEBUG)
    token = "hf_standin_" + secrets.token_hex(16)
    before = _snapshot(run_dir)
    url = push_run(run_dir, "curricula-test/tiny-lfr", token=token, endpoint=hub.endpoint,
                   commit_message="push from test")
    assert url.startswith(f"{hub.endpoint}/curricula-test/tiny-lfr/commit/")
    assert _snapshot(run_dir) == before, "the run folder was modified"
    assert hub.state.unhandled == [] or all(u.startswith("GET /api/") for u in hub.state.unhandled), \
        hub.state.unhandled

    files = hub.files("curricula-test/tiny-lfr")
    top_model = {p.name for p in run_dir.iterdir() if p.is_file() and (p.suffix == ".safetensors" or p.name in
                                                                        ("config.json", "generation_config.json"))}
    expected = top_model | {
        "README.md", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "curriculum/epoch-000-learn.parquet", "curriculum/run.json", "curriculum/focus_reports.jsonl",
        "analysis/domain_ppl_over_training.png", "analysis/report.md", "analysis/summary.json",
        "doremi/domain_weights.json",
    }
    assert set(files) == expected
    assert files["analysis/domain_ppl_over_training.png"] == (run_dir / "analysis/domain_ppl_over_training.png").read_bytes()
    assert hub.state.commits[-1]["summary"] == "push from test"

    card = files["README.md"].decode()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers"
    assert meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "text-generation"
    assert meta["tags"] == ["curricula", "lfr"]
    assert "| 0 | learn |" in card and "| prose | 0.6250 |" in card
    assert "(analysis/domain_ppl_over_training.png)" in card and "{{" not in card

    pulled = Path(snapshot_download("curricula-test/tiny-lfr", endpoint=hub.endpoint, token=token,
                                    cache_dir=tmp_path / "cache"))
    assert {p.relative_to(pulled).as_posix() for p in pulled.rglob("*") if p.is_file()} == expected
    model = AutoModelForCausalLM.from_pretrained(pulled).eval()
    original = AutoModelForCausalLM.from_pretrained(run_dir).eval()
    tok = AutoTokenizer.from_pretrained(pulled)
    ids = torch.tensor([tok("the quick brown fox")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, original(ids).logits)

    # the token was sent ... and never written or logged anywhere
    assert hub.state.auth_headers and all(h == f"Bearer {token}" for h in hub.state.auth_headers)
    assert token not in json.dumps(hub.state.requests)
    for content in files.values():
        assert token.encode() not in content
    for p in list(pulled.rglob("*")) + list((tmp_path / "cache").rglob("*")) + list(run_dir.rglob("*")):
        if p.is_file():
            assert token.encode() not in p.read_bytes(), p
    out = capsys.readouterr()
    assert token not in out.out and token not in out.err and token not in caplog.text


def test_name_only_repo_id_token_from_env_and_second_push(run_dir, hub, online, monkeypatch):
    token = "hf_env_" + secrets.token_hex(8)
    monkeypatch.setenv("HF_TOKEN", token)
    push_run(run_dir, "tiny", endpoint=hub.endpoint)
    (run_dir / "analysis" / "report.md").write_text("# report v2\n")
    url = push_run(run_dir, "tiny", endpoint=hub.endpoint, license="mit")
    assert "/user/tiny/commit/" in url
    files = hub.files("user/tiny")
    assert files["analysis/report.md"] == b"# report v2\n"
    assert yaml.safe_load(files["README.md"].decode().split("---\n")[1])["license"] == "mit"
    assert len(hub.state.commits) == 2
    assert hub.state.auth_headers and all(h == f"Bearer {token}" for h in hub.state.auth_headers)


def test_collect_rules(run_dir, monkeypatch):
    files = collect_run_files(run_dir)
    assert "data.json" not in files and "training_args.bin" not in files
    assert not any(f.startswith("checkpoint-") or f.endswith(".tmp") for f in files)
    with_ckpt = collect_run_files(run_dir, include_checkpoints=True)
    assert "training_args.bin" in with_ckpt and "checkpoint-2/model.safetensors" in with_ckpt
    (run_dir / "curriculum" / "table.arrow").write_bytes(b"0" * 64)
    assert "curriculum/table.arrow" in collect_run_files(run_dir)
    monkeypatch.setattr(hubmod, "TABLE_MAX_BYTES", 10)
    assert "curriculum/table.arrow" not in collect_run_files(run_dir)


def test_bad_input_fails_before_any_request(run_dir, monkeypatch, no_network, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubPushError, match="no repo id"):
        push_run(run_dir, "", token="hf_x")
    with pytest.raises(HubPushError, match="no repo id"):
        push_run(run_dir, None, token="hf_x")
    for bad in ("a/b/c", "-lead", "ns/na me", "ns/x--y"):
        with pytest.raises(HubPushError, match="invalid repo id"):
            push_run(run_dir, bad, token="hf_x")
    with pytest.raises(HubPushError, match="HF_TOKEN") as err:
        push_run(run_dir, "ns/name")
    assert "token=" in str(err.value)
    with pytest.raises(HubPushError, match="does not exist"):
        push_run(tmp_path / "missing", "ns/name", token="hf_x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubPushError, match="no model"):
        push_run(tmp_path / "empty", "ns/name", token="hf_x")
    assert not os.environ.get("HF_TOKEN")
