"""Publishing (``hf_trainer_ext/hub.py``) against a local Hub stand-in on 127.0.0.1
(``hf_trainer_ext/hub_standin.py``), through both routes:

* ``push_run`` (``curricula push``): what arrives, the card's front matter, pulling back with ``snapshot_download`` +
  ``from_pretrained``, the token never leaking;
* Trainer's own push (``push_to_hub=True`` + ``hub_strategy``) from a ``CurriculumTrainer`` run: the commits at save
  steps, the final upload with the curricula card, and the token kept out of ``training_args.bin``.

Known and not fixed here: Trainer uploads ``output_dir`` minus ``_*`` and ``checkpoint-*`` (its ignore patterns are
hard-coded), so anything else a script writes there is published too, e.g. scripts/train.py's ``data.json`` (a local
path). ``curricula push`` (``push_run``) is the curated route.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from curricula.logs import write_epoch_log
from curricula.methods.lfr.plan import PhaseEpoch
from curricula.report import files as report_files
from hf_trainer_ext.hub import HubPushError, collect_run_files, push_run
from hf_trainer_ext.hub_standin import HubStandIn

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
    (log / "plan.json").write_text(json.dumps({
        "plan": {"name": "lfr", "params": {}, "phases": [{"kind": "learn", "epochs": 1}]}, "seed": 0,
        "global_batch": 4, "n_blocks": n, "domain_names": ["prose", "code"],
        "epochs": [{"index": 0, "kind": "learn", "phase_index": 0, "drop_percent": None, "blocks": n, "steps": 2}],
        "total_steps": 2}))
    (log / "focus_reports.jsonl").write_text("")
    (log / "plan.json.tmp").write_text("{}")
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
        "curriculum/epoch-000-learn.parquet", "curriculum/plan.json", "curriculum/focus_reports.jsonl",
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


def test_push_continual_stage_with_replay_and_lr_plots(hub, online, tmp_path, continual_run):
    """A continual stage folder holds only its model: the card's replay table and the loss-curve plot come from the
    parent folder, the LR plot is drawn at push time; an LR plot already in the run folder (from an earlier
    Trainer push) is replaced in the upload, never written through its hard link."""

    root = continual_run(tmp_path / "cont")
    run = root / "de-replay5"
    (run / "lr_schedule.png").write_bytes(b"old plot")
    before = _snapshot(root)
    push_run(run, "curricula-test/de-replay5", token="hf_" + secrets.token_hex(8), endpoint=hub.endpoint)
    assert _snapshot(root) == before and (run / "lr_schedule.png").read_bytes() == b"old plot"
    files = hub.files("curricula-test/de-replay5")
    assert set(files) == {"README.md", "config.json", "model.safetensors", "lr_schedule.png", "continual/continual.png"}
    assert files["continual/continual.png"] == (root / "continual.png").read_bytes()
    assert files["lr_schedule.png"].startswith(b"\x89PNG")
    card = files["README.md"].decode()
    assert "## Continual pretraining and replay" in card and "| 2 | de | 400 | 5 % |" in card
    assert "## Learning-rate schedule" in card and "](lr_schedule.png)" in card and "](continual/continual.png)" in card
    assert "/data/en" not in card  # the recipe's local data paths stay out of the card


def test_collect_rules(run_dir, monkeypatch):
    files = collect_run_files(run_dir)
    assert "data.json" not in files and "training_args.bin" not in files
    assert not any(f.startswith("checkpoint-") or f.endswith(".tmp") for f in files)
    with_ckpt = collect_run_files(run_dir, include_checkpoints=True)
    assert "training_args.bin" in with_ckpt and "checkpoint-2/model.safetensors" in with_ckpt
    (run_dir / "curriculum" / "table.arrow").write_bytes(b"0" * 64)
    assert "curriculum/table.arrow" in collect_run_files(run_dir)
    monkeypatch.setattr(report_files, "TABLE_MAX_BYTES", 10)
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


# ---- push failures: the Hub unreachable, or the token refused -------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:  # bound, never listening: a connection to it is refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _push_fails(run_dir, endpoint: str, token: str, repo_id: str = "curricula-test/fails") -> str:
    with pytest.raises(HubPushError) as err:
        push_run(run_dir, repo_id, token=token, endpoint=endpoint)
    message = str(err.value)
    assert token not in message and token[3:] not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no client traceback chained on
    assert endpoint in message and repo_id in message
    return message


def test_push_to_a_closed_port_says_the_hub_is_unreachable(run_dir, online):
    token = "hf_" + secrets.token_hex(12)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    message = _push_fails(run_dir, endpoint, token)
    assert message.startswith(f"cannot reach the Hub at {endpoint}")
    assert "the connection was refused" in message and "nothing listens there" in message
    assert "check the network connection" in message and "HF_ENDPOINT" in message
    assert "token" not in message.split(";")[0]  # an unreachable Hub is not blamed on the token


def test_push_to_a_host_that_does_not_resolve(run_dir, online, monkeypatch):
    import socket

    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    token = "hf_" + secrets.token_hex(12)
    message = _push_fails(run_dir, "https://hub.example.invalid", token)
    assert "the host name hub.example.invalid does not resolve (DNS" in message and "HF_ENDPOINT" in message


def test_push_to_a_hub_that_does_not_answer_times_out(run_dir, online):
    """The client's default session has no timeout; with one set (``set_client_factory``), a Hub that accepts the
    connection but never answers is a timeout, told as such."""
    import socket

    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel's backlog) and never answers
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    set_client_factory(lambda: httpx2.Client(timeout=0.3, follow_redirects=True))
    try:
        message = _push_fails(run_dir, endpoint, "hf_" + secrets.token_hex(12))
    finally:
        set_client_factory(default_client_factory)
        silent.close()
    assert "did not answer in time (ReadTimeout" in message and "check the network connection" in message


@pytest.mark.parametrize("status", [401, 403])
def test_push_with_a_refused_token_says_so(run_dir, online, status):
    """A stand-in that refuses every request, as the Hub does for an invalid token (401) or one without write
    access (403), and echoes the Authorization header into its error message: the message says the token was refused
    and what to do, and carries no token even then."""
    token = "hf_" + secrets.token_hex(12)
    with HubStandIn(refuse=status, echo_auth=True) as hub:
        message = _push_fails(run_dir, hub.endpoint, token)
        assert hub.state.auth_headers and all(h == f"Bearer {token}" for h in hub.state.auth_headers)
    assert message.startswith(f"the Hub at {hub.endpoint} (repo curricula-test/fails) refused the token ({status} ")
    assert "Bearer <token>" in message  # the echoed header, scrubbed
    assert "hf auth login" in message and "https://huggingface.co/settings/tokens" in message
    if status == 401:
        assert "invalid, expired or revoked" in message
    else:
        assert "write permission" in message and "namespace curricula-test" in message
    assert "cannot reach" not in message


def test_push_in_offline_mode_says_how_to_go_online(run_dir, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    message = _push_fails(run_dir, f"http://127.0.0.1:{_closed_port()}", "hf_" + secrets.token_hex(12))
    assert "offline mode (HF_HUB_OFFLINE=1)" in message and "unset HF_HUB_OFFLINE" in message


def test_cli_push_failure_is_one_line_without_traceback(run_dir, online, monkeypatch, capsys):
    from curricula.cli import run_command
    from hf_trainer_ext.cli import cmd_push

    token = "hf_" + secrets.token_hex(12)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", token)
    import argparse

    args = argparse.Namespace(func=cmd_push, run_dir=str(run_dir), repo_id="me/x", token=None, endpoint=None,
                              private=False, license="apache-2.0", include_checkpoints=False)
    assert run_command(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"curricula: error: cannot reach the Hub at {endpoint}") and "Traceback" not in err
    assert token not in err and len(err.strip().splitlines()) == 1


def test_cli_push_with_endpoint_reaches_the_hub_named(run_dir, hub, online, capsys):
    """``curricula push RUN --endpoint URL``: the runnable local example of the README, against the stand-in that
    ``curricula hub-standin`` serves (the same class); the run's model, card and curriculum log arrive."""
    from hf_trainer_ext.cli import main

    assert main(["push", str(run_dir), "--repo-id", "me/tiny-lfr", "--token", "local", "--endpoint", hub.endpoint]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pushed {run_dir} to me/tiny-lfr: {hub.endpoint}/me/tiny-lfr/commit/")
    files = hub.state.repos["me/tiny-lfr"]["files"]
    assert {"README.md", "config.json", "model.safetensors", "curriculum/plan.json"} <= set(files)
    assert not any(p.startswith("checkpoint-") for p in files)  # checkpoints only with --include-checkpoints


# ---- Trainer's own push path: CurriculumTrainer(push_to_hub=True, hub_strategy=...) ---------------------------------

PLAN = "name: lfr-tiny\nphases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 1}]"
SAVE_STEPS = (3, 6, 9)  # 96 blocks, global batch 16: 6 learn steps + 3 focus steps (50 % kept), saved every 3
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "training_args.bin"}
RUN_LOG = {"curriculum/epoch-000-learn.parquet", "curriculum/epoch-001-focus.parquet", "curriculum/plan.json",
           "curriculum/focus_reports.jsonl", "curriculum/table.arrow", "run.json"}
CHECKPOINT_FILES = {"config.json", "generation_config.json", "model.safetensors", "optimizer.pt", "scheduler.pt",
                    "rng_state.pth", "trainer_state.json", "training_args.bin", "training_config.json",
                    "curriculum/state.json", "curriculum/table.arrow", "curriculum/pending.parquet",
                    "curriculum/events.json", "COMPLETE"}


@pytest.fixture
def trainer_hub(hub, online, monkeypatch):
    """Point Trainer's uploads at the stand-in. Trainer's init_hf_repo, push_to_hub and _push_from_checkpoint all go
    through ``transformers.utils.hub.hf_api()``, one ``HfApi`` cached at first use with the endpoint huggingface_hub
    read at import (``constants.ENDPOINT``), so the cached instance is replaced, not re-pointed."""
    import transformers
    import transformers.utils.hub as thub
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint, library_name="transformers", library_version=transformers.__version__)
    monkeypatch.setattr(thub, "_hf_api", api)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer d=32 model gains nothing from 2 threads and stalls when the CPU is busy
    try:
        yield hub
    finally:
        torch.set_num_threads(threads)
        if api._thread_pool is not None:  # the worker of upload_folder(run_as_future=True)
            api._thread_pool.shutdown(wait=True)


@contextmanager
def _debug_logs(caplog):
    """transformers' and huggingface_hub's loggers at DEBUG into caplog (they do not propagate by default)."""
    names = ("transformers", "huggingface_hub")
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.addHandler(caplog.handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.removeHandler(caplog.handler)
            logger.setLevel(level)


class _PushWaiter:
    """Makes Trainer's background checkpoint pushes deterministic: after each save, wait for the upload jobs it
    started (``upload_folder(run_as_future=True)``), re-raise their errors, and snapshot the repo. Without it a slow
    upload makes Trainer skip the next one (``hub_always_push=False``), which is Trainer's design, not under test."""

    def __init__(self, hub: HubStandIn, repo_id: str):
        from transformers import TrainerCallback

        self.hub, self.repo_id, self.trainer, self.at_save = hub, repo_id, None, {}
        waiter = self

        class Callback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                push = waiter.trainer.push_in_progress
                for job in (push.jobs if push is not None else []):
                    job.result(timeout=60)  # raises the upload's exception, if any
                waiter.at_save[state.global_step] = (len(waiter.hub.state.commits), waiter.hub.files(waiter.repo_id))

        self.callback = Callback()


@pytest.fixture
def curriculum_trainer(blocks, plan_file, targs, tiny_gpt2):
    """``curriculum_trainer(tmp_path, token, repo_id, strategy, callbacks=())``: an LFR CurriculumTrainer pushing to
    the Hub with ``hub_strategy=strategy``."""
    from hf_trainer_ext import CurriculumTrainer

    def make(tmp_path, token: str, repo_id: str, strategy: str, callbacks=()):
        args = targs(tmp_path / "run", curriculum=plan_file(tmp_path, PLAN), push_to_hub=True, hub_model_id=repo_id,
                     hub_token=token, hub_strategy=strategy, save_strategy="steps", save_steps=3, logging_steps=1,
                     lr_schedule='{"type": "warmup_cosine", "warmup_steps": 2}')
        return CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), callbacks=list(callbacks))

    return make


def _assert_no_token(token: str, files: dict[str, bytes], hub: HubStandIn, folders=(), texts=()) -> None:
    assert all(u.startswith("GET /api/") for u in hub.state.unhandled), hub.state.unhandled  # only env detection
    assert hub.state.auth_headers and all(h == f"Bearer {token}" for h in hub.state.auth_headers)
    assert token not in json.dumps(hub.state.requests)
    for path, content in files.items():
        assert token.encode() not in content, f"the token was uploaded in {path}"
    for folder in folders:
        for p in Path(folder).rglob("*"):
            if p.is_file():
                assert token.encode() not in p.read_bytes(), p
    for text in texts:
        assert token not in text


def _args_token(blob: bytes):
    return torch.load(io.BytesIO(blob), weights_only=False).hub_token


DATA_FILE_WARNING = "ignore:It seems that you are about to commit a data file"  # the logs belong to the model


@pytest.mark.filterwarnings(DATA_FILE_WARNING)
def test_trainer_push_end_uploads_model_card_and_logs(trainer_hub, tmp_path, caplog, capfd, curriculum_trainer):
    """hub_strategy="end": nothing is pushed at save steps; ``save_model()`` (what scripts/train.py calls) pushes
    the model, the curricula card, the LR plot and the curriculum logs in one commit, and the pulled model is equal."""
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM

    hub, repo = trainer_hub, "curricula-test/trainer-end"
    token = "hf_trainer_" + secrets.token_hex(16)
    with _debug_logs(caplog):
        tr = curriculum_trainer(tmp_path, token, repo, "end")
        assert repo in hub.state.repos and hub.state.commits == []  # Trainer.__init__ creates the repo
        tr.train()
        out = Path(tr.args.output_dir)
        assert hub.state.commits == [] and {f"checkpoint-{s}" for s in SAVE_STEPS} <= {p.name for p in out.iterdir()}
        tr.save_model()  # push_to_hub=True: Trainer.push_to_hub(commit_message="Model save")
    assert [c["summary"] for c in hub.state.commits] == ["Model save"]
    files = hub.files(repo)
    assert set(files) == MODEL_FILES | RUN_LOG | {"README.md", "training_config.json", "lr_schedule.png"}
    assert files["lr_schedule.png"].startswith(b"\x89PNG")
    for name in RUN_LOG:
        assert files[name] == (out / name).read_bytes(), name
    import pyarrow.parquet as pq

    assert pq.read_table(io.BytesIO(files["curriculum/epoch-000-learn.parquet"])).num_rows == 96
    assert pq.read_table(io.BytesIO(files["curriculum/epoch-001-focus.parquet"])).num_rows == 48

    card = files["README.md"].decode()
    assert card.startswith("---\n") and "{{" not in card
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    # the method from run.json (not the plan's name); Trainer's generated_from_trainer once write_trainer_card writes it
    assert meta["tags"] in (["curricula", "lfr"], ["curricula", "lfr", "generated_from_trainer"])
    assert "## Curriculum" in card and "| 1 | focus | 50 |" in card
    assert "## Learning-rate schedule" in card and "`warmup_cosine`" in card and "| `warmup_steps` | `2` |" in card
    assert "| `total_steps` | `9` |" in card and "![learning rate over the run](lr_schedule.png)" in card

    assert _args_token(files["training_args.bin"]) is None and tr.args.hub_token == token  # masked, still usable
    pulled = Path(snapshot_download(repo, endpoint=hub.endpoint, token=token, cache_dir=tmp_path / "cache"))
    model = AutoModelForCausalLM.from_pretrained(pulled).eval()
    ids = torch.arange(20).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tr.model.eval()(ids).logits)
    captured = capfd.readouterr()
    assert "Training in progress" not in caplog.text  # no background push was started
    _assert_no_token(token, files, hub, folders=(out, pulled, tmp_path / "cache"),
                     texts=(captured.out, captured.err, caplog.text))


@pytest.mark.filterwarnings(DATA_FILE_WARNING)
@pytest.mark.parametrize("strategy", ["every_save", "checkpoint", "all_checkpoints"])
def test_trainer_push_at_every_save(trainer_hub, tmp_path, strategy, caplog, capfd, curriculum_trainer):
    """hub_strategy every_save / checkpoint / all_checkpoints: one commit of the model (+ one of the checkpoint
    folder) per save step, equal to that checkpoint; the curriculum resume state travels with the checkpoint;
    ``push_to_hub()`` at the end waits for them and adds the card."""
    hub, repo = trainer_hub, f"curricula-test/trainer-{strategy.replace('_', '-')}"
    token = "hf_trainer_" + secrets.token_hex(16)
    waiter = _PushWaiter(hub, repo)
    with _debug_logs(caplog):
        tr = curriculum_trainer(tmp_path, token, repo, strategy, callbacks=[waiter.callback])
        waiter.trainer = tr
        tr.train()
        out = Path(tr.args.output_dir)
        with_ckpt = strategy != "every_save"
        expected = []
        for step in SAVE_STEPS:
            expected.append(f"Training in progress, step {step}")
            expected += [f"Training in progress, step {step}, checkpoint"] if with_ckpt else []
        assert [c["summary"] for c in hub.state.commits] == expected
        for i, step in enumerate(SAVE_STEPS):
            n_commits, files = waiter.at_save[step]
            assert n_commits == (i + 1) * (2 if with_ckpt else 1)
            ckpt = out / f"checkpoint-{step}"
            assert files["model.safetensors"] == (ckpt / "model.safetensors").read_bytes()
            assert _args_token(files["training_args.bin"]) is None
            folder = {"every_save": None, "checkpoint": "last-checkpoint", "all_checkpoints": f"checkpoint-{step}"}[
                strategy]
            if folder is None:
                assert not any(p.startswith(("last-checkpoint/", "checkpoint-")) for p in files)
                continue
            pushed = {p[len(folder) + 1:] for p in files if p.startswith(folder + "/")}
            assert pushed == CHECKPOINT_FILES
            assert json.loads(files[f"{folder}/trainer_state.json"])["global_step"] == step
            assert files[f"{folder}/curriculum/state.json"] == (ckpt / "curriculum" / "state.json").read_bytes()
            assert _args_token(files[f"{folder}/training_args.bin"]) is None
        tr.push_to_hub()
    assert hub.state.commits[-1]["summary"] == "End of training" and len(hub.state.commits) == len(expected) + 1
    files = hub.files(repo)
    card = files["README.md"].decode()
    assert yaml.safe_load(card.split("---\n")[1])["tags"][:2] == ["curricula", "lfr"]
    assert RUN_LOG <= set(files) and files["model.safetensors"] == (out / "model.safetensors").read_bytes()
    if strategy == "all_checkpoints":
        folders = {p.split("/")[0] for p in files if p.startswith("checkpoint-")}
        assert folders == {f"checkpoint-{s}" for s in SAVE_STEPS}
    captured = capfd.readouterr()
    _assert_no_token(token, files, hub, folders=(out,), texts=(captured.out, captured.err, caplog.text))


def test_hub_token_is_masked_in_pickles_only():
    from hf_trainer_ext import CurriculumTrainingArguments
    from hf_trainer_ext.hub import HubToken, protect_hub_token

    args = CurriculumTrainingArguments(output_dir="unused", hub_token="hf_" + "x" * 30, report_to="none")
    protect_hub_token(args)
    assert isinstance(args.hub_token, HubToken) and args.hub_token == "hf_" + "x" * 30
    assert f"Bearer {args.hub_token}" == "Bearer hf_" + "x" * 30 and "x" * 30 not in repr(args.hub_token)
    buf = io.BytesIO()
    torch.save(args, buf)
    assert b"x" * 30 not in buf.getvalue() and _args_token(buf.getvalue()) is None
    import copy

    assert copy.deepcopy(args).hub_token == args.hub_token and args.to_dict()["hub_token"] == "<HUB_TOKEN>"
