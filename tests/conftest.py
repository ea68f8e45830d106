"""Test setup for every test under tests/: everything offline, caches in a temporary folder, and the shared helpers
as fixtures.

The helpers live in ``tests/support.py`` (not a test module). Test modules take them as fixtures and import nothing
from other test modules or from ``support``:

* factories, returning the helper itself (call it with arguments): ``blocks``, ``tiny_gpt2``, ``targs``,
  ``plan_file``, ``loss_tap``, ``per_step``, ``assert_counts_follow``, ``lfr``, ``table_with``, ``tiny_lfr``,
  ``single_process``, ``proxy``, ``synthetic_docs``, ``continual_run``;
* data built once per test module: ``two_stages``, ``tiny_packed``, ``clm_corpus``, ``reference``;
* ``no_network``: every attempt to open a connection raises.
"""

import os
import socket
import sys
import tempfile

import pytest

_CACHE = tempfile.mkdtemp(prefix="curricula-test-cache-")
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HOME": os.path.join(_CACHE, "hf"),
    "HF_DATASETS_CACHE": os.path.join(_CACHE, "datasets"),
    "TIKTOKEN_CACHE_DIR": os.path.join(_CACHE, "tiktoken"),
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}.items():
    os.environ[key] = value

# tests/support.py, imported with tests/ on sys.path only for that moment: tests/ also holds folders named like the
# packages (tests/curricula, tests/hf_trainer_ext), which must never shadow them. support imports torch lazily.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import support  # noqa: E402
finally:
    del sys.path[0]


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve a host or open a connection raises."""

    def refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return NetworkBlocked


# ---- factories: the helper itself, called by the test with its arguments ------------------------------------------


@pytest.fixture(scope="session")
def blocks():
    """``blocks(n=96, seed=0)``: n packed blocks of 32 tokens in 3 domains (easy, half-predictable, random)."""
    return support.blocks


@pytest.fixture(scope="session")
def tiny_gpt2():
    """``tiny_gpt2(dropout=0.1, seed=0)``: a 2-layer, 32-wide GPT-2 over 128 tokens."""
    return support.tiny_gpt2


@pytest.fixture(scope="session")
def load_official():
    """``load_official(name)``: the transcription of official code in tests/fixtures/official/NAME.py, as a module."""
    return support.load_official


@pytest.fixture(scope="session")
def stop_after():
    """``stop_after(step)``: a callback that ends training after optimizer step ``step``."""
    return support.stop_at


@pytest.fixture(scope="session")
def online_mixer_on_two_processes():
    """``online_mixer_on_two_processes(out, method, *extra)``: tests/drivers/dist_online_mixer_run.py on 2 CPU
    processes; the two ranks' records (with ``steps, checkpoint``: the resumed run's)."""
    return support.online_mixer_on_two_processes


@pytest.fixture(scope="session")
def targs():
    """``targs(out, cls=CurriculumTrainingArguments, **kw)``: arguments for a tiny CPU run (batch 8 x 2)."""
    return support.targs


@pytest.fixture(scope="session")
def plan_file():
    """``plan_file(tmp_path, text)``: the plan written to tmp_path/plan.yaml, as a path string."""
    return support.plan_file


@pytest.fixture(scope="session")
def loss_tap():
    """``loss_tap(trainer)``: a ``LossTap`` recording every micro-batch loss and its block ids (``.losses``,
    ``.batches``)."""
    return support.LossTap


@pytest.fixture(scope="session")
def per_step():
    """``per_step(tap, ga=2)``: a loss tap's micro-batches joined into optimizer steps."""
    return support.per_step


@pytest.fixture(scope="session")
def assert_counts_follow():
    """``assert_counts_follow(ids, weights, batch=16)``: every domain of ``blocks()`` at floor/ceil of its quota."""
    return support.assert_counts_follow


@pytest.fixture(scope="session")
def lfr():
    """``lfr(tmp_path, out, stop_at=None, resume=None, eval_dataset=None, **args)``: a 4-epoch LFR run on ``blocks()``
    saving every 3 steps (learn 6 steps, focus 3 + 3, review 6); returns (trainer, loss tap)."""
    return support.lfr


@pytest.fixture(scope="session")
def table_with():
    """``table_with(losses, domains=None)``: an LFR index table whose blocks were all seen once with these losses."""
    return support.table_with


@pytest.fixture(scope="session")
def tiny_lfr():
    """``tiny_lfr(plan=learn + focus 50 %, n=32, global_batch=8, seed=0)``: an LFR curriculum over n blocks in two
    domains (easy: the first half, hard), not started."""
    return support.tiny_lfr


@pytest.fixture(scope="session")
def single_process():
    """``single_process()``: a stand-in accelerator for one process (``wait_for_everyone`` counted in ``waits``)."""
    return support.SingleProcess


@pytest.fixture(scope="session")
def proxy():
    """``proxy(tmp_path, max_steps=8, args={}, **trainer_kw)``: a DoReMi proxy (Group DRO) trainer on ``blocks()``."""
    return support.proxy


@pytest.fixture(scope="session")
def synthetic_docs():
    """``synthetic_docs(n_per_domain=60, domains=("code", "legal", "prose"), seed=0)``: random-word documents."""
    return support.synthetic_docs


@pytest.fixture(scope="session")
def continual_run():
    """``continual_run(root, infinite=False)``: a synthetic ``curricula continual`` output folder at root."""
    return support.continual_run


# ---- data built once per test module (as when each module built its own) ------------------------------------------


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    """Two tiny packed datasets sharing a 300-token BPE: ``packed-en`` (code, prose), ``packed-de``; ``bpe``."""
    return support.build_two_stages(tmp_path_factory.mktemp("cont"))


@pytest.fixture(scope="module")
def tiny_packed(tmp_path_factory):
    """A tiny 3-domain packed dataset (64-token blocks, its own 300-token BPE beside it in ``../bpe``)."""
    return support.build_tiny_packed(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def clm_corpus(tmp_path_factory):
    """``docs.jsonl`` (text, domain) and a BPE (``bpe``) trained on it: the input of examples/run_clm.py."""
    return support.build_clm_corpus(tmp_path_factory.mktemp("clm"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A DoReMi reference model trained 6 steps on ``blocks()`` and its cached losses: (model, cache folder)."""
    return support.build_reference(tmp_path_factory.mktemp("ref"))
