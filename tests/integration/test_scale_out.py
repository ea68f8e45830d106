"""Scale out on 2 CPU processes (gloo): every method under FSDP2 gives DDP's results; 2 "nodes" x 1 process give
1 node x 2 processes' results; no process but the main one writes a shared artifact."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DRIVERS = Path(__file__).resolve().parents[1] / "drivers"
METHODS = ["plain", "lfr", "mixture", "group_dro", "group_dro_live", "online"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthetic_docs):
    from curricula.data.corpus import write_corpus
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.packed import PackedData
    from curricula.data.tokenizers import train_bpe
    from hf_trainer_ext.reference import model_for_data, save_tokenizer_folder, score_reference

    root = tmp_path_factory.mktemp("scale")
    docs = synthetic_docs(n_per_domain=40, domains=("code", "prose"), seed=0)
    train_bpe([d["text"] for d in docs], root / "bpe", vocab_size=300)
    write_corpus(docs, root / "corpus", val_fraction=0.1)
    pack_corpus(root / "corpus", root / "packed", PackConfig(tokenizer=str(root / "bpe"), block_size=64))
    data = PackedData.load(root / "packed")
    ref = model_for_data(data.meta, seed=5, n_layer=2, n_embd=32, n_head=2)
    ref.save_pretrained(root / "reference")
    save_tokenizer_folder(str(root / "bpe"), root / "reference")
    score_reference(ref, data.train, root / "cache", tokenizer_identity=data.tokenizer)
    tasks = [{"id": str(i), "context": "the cat sat on the", "choices": [" mat", " dog", " tree"], "answer": i % 3}
             for i in range(6)]
    (root / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return root


def torchrun(*args, nnodes=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nnodes is None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return
    with socket.socket() as s:  # a free port for the two "nodes" to meet at
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                               "--node_rank", str(rank), "--rdzv_backend", "c10d", "--rdzv_id", "two-nodes",
                               "--rdzv_endpoint", f"127.0.0.1:{port}", *map(str, args)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outs = [p.communicate(timeout=900) for p in nodes]
    for p, (o, e) in zip(nodes, outs):
        assert p.returncode == 0, o[-2000:] + e[-4000:]


def weights(folder: Path) -> dict:
    """The saved weights; the tied lm_head (written out under FSDP, left out otherwise) checked against the input
    embedding and dropped."""
    from safetensors.numpy import load_file

    w = load_file(str(folder / "model.safetensors"))
    head = w.pop("lm_head.weight", None)
    if head is not None:
        np.testing.assert_array_equal(head, w["transformer.wte.weight"])
    return w


def test_every_method_under_fsdp2_gives_ddps_results(setup, tmp_path):
    root = setup
    common = [root / "packed", root / "bpe", root / "tasks.jsonl", root / "cache", root / "reference"]
    for backend in ("ddp", "fsdp"):
        torchrun(DRIVERS / "dist_methods_run.py", tmp_path / backend, backend, *common)
    ddp, fsdp = (json.loads((tmp_path / b / f"results-{b}.json").read_text()) for b in ("ddp", "fsdp"))
    for name in METHODS:
        a, b = ddp[name], fsdp[name]
        assert a["world"] == b["world"] == 2 and not a["sharded"] and b["sharded"], name  # DTensor parameters: FSDP2
        assert a["batches"] == b["batches"], name  # the same blocks in the same order on rank 0
        np.testing.assert_allclose(a["losses"], b["losses"], rtol=0, atol=1e-5, err_msg=name)
        if a["history"] is not None:  # the Group-DRO weights of every step
            np.testing.assert_allclose(a["history"], b["history"], rtol=0, atol=1e-7, err_msg=name)
        assert a["log"] == b["log"]
        assert set(a["eval"]) == set(b["eval"]) and any("task" in k for k in a["eval"])  # zero-shot on the shards
        for k in a["eval"]:
            assert a["eval"][k] == pytest.approx(b["eval"][k], rel=1e-5, abs=1e-6), (name, k)
        wa, wb = weights(tmp_path / "ddp" / name), weights(tmp_path / "fsdp" / name)  # the saved, gathered weights
        assert set(wa) == set(wb)
        for k in wa:
            np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=1e-5, err_msg=f"{name} {k}")
    la, lb = ddp["lfr"]["records"], fsdp["lfr"]["records"]
    for epoch in la:  # the curriculum log: same blocks, same steps, losses within float noise
        assert la[epoch]["block_id"] == lb[epoch]["block_id"] and la[epoch]["step"] == lb[epoch]["step"]
        np.testing.assert_allclose(la[epoch]["loss"], lb[epoch]["loss"], rtol=0, atol=1e-5)
    for sa, sb in zip(ddp["continual"]["after"], fsdp["continual"]["after"]):  # stages handed over through folders
        assert sa.keys() == sb.keys() and all(sa[k] == pytest.approx(sb[k], rel=1e-5) for k in sa)
    wa, wb = weights(tmp_path / "ddp" / "continual" / "b-replay25"), weights(tmp_path / "fsdp" / "continual" / "b-replay25")
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=1e-5)


def test_two_nodes_of_one_process_give_one_node_of_two(tmp_path):
    plan = "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 40, epochs: 2}, {kind: review, epochs: 1}]"
    (tmp_path / "plan.yaml").write_text(plan)
    torchrun(DRIVERS / "dist_lfr_run.py", tmp_path / "one-node", tmp_path / "plan.yaml")
    torchrun(DRIVERS / "dist_lfr_run.py", tmp_path / "two-nodes", tmp_path / "plan.yaml", nnodes=2)
    one, two = ([json.loads((tmp_path / d / f"rank{rank}.json").read_text()) for rank in (0, 1)]
                for d in ("one-node", "two-nodes"))
    for a, b in zip(one, two):
        assert a["world"] == b["world"] == 2
        assert a["batches"] == b["batches"] and a["steps"] == b["steps"]
        assert [t["eligible"] for t in a["tables"]] == [t["eligible"] for t in b["tables"]]
    # every node decides on its own, from the same gathered losses: each node's process holds the one node's losses
    assert [t["loss"] for t in two[0]["tables"]] == [t["loss"] for t in two[1]["tables"]] \
        == [t["loss"] for t in one[0]["tables"]]
    assert all(t["loss"] is None for t in one[1]["tables"])  # one node of two: its follower holds none


def test_only_the_main_process_writes_shared_artifacts_and_scoring_is_split(setup, tmp_path):
    from curricula.run_layout import read_table

    root = setup
    training = {"per_device_train_batch_size": 4, "disable_tqdm": True, "logging_steps": 2, "use_cpu": True,
                "ddp_find_unused_parameters": False}
    doremi = tmp_path / "doremi.yaml"
    doremi.write_text(json.dumps({"method": "doremi", "rounds": 1, "reference_steps": 4, "proxy_steps": 4,
                                  "main_steps": 2, "model": {"n_layer": 1, "n_embd": 32, "n_head": 2},
                                  "max_eval_blocks": 16, "training": training}))
    continual = tmp_path / "continual.yaml"
    continual.write_text(json.dumps({
        "method": "continual", "model": {"n_layer": 1, "n_embd": 32, "n_head": 2}, "eval_every": 2,
        "max_eval_blocks": 8, "training": training,
        "stages": [{"name": "a", "packed": str(root / "packed"), "steps": 4},
                   {"name": "b", "packed": str(root / "packed"), "steps": 4, "replay": 0.25}]}))
    out = tmp_path / "out"
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    torchrun(DRIVERS / "dist_pipeline_writes.py", tmp_path / "w1", "--", "doremi", "--recipe", doremi,
             "--packed", root / "packed", "--out", out / "doremi")
    torchrun(DRIVERS / "dist_pipeline_writes.py", tmp_path / "w2", "--", "continual", continual, "--out", out / "continual")
    for w in ("w1", "w2"):
        main, other = (json.loads((tmp_path / w / f"writes-rank{r}.json").read_text()) for r in (0, 1))
        shared = [p for p in other if p.startswith(str(out.resolve()))
                  and "/_parts/part-" not in p and not Path(p).name.startswith("rng_state_1")]
        assert shared == [], shared  # process 1 wrote only its share of the reference scoring and its RNG state
        assert any(p.endswith("doremi.json") or p.endswith("continual.json") for p in main)
        assert any("/_parts/part-00001.arrow" in p for p in other) or w == "w2"  # it did score its share
    # the cache assembled from the two shares is the single-process cache
    from curricula.data.packed import PackedData
    from transformers import AutoModelForCausalLM

    from hf_trainer_ext.reference import score_reference

    ref = AutoModelForCausalLM.from_pretrained(out / "doremi" / "round0" / "reference")
    score_reference(ref, PackedData.load(root / "packed").train, tmp_path / "single")
    two = read_table(out / "doremi" / "round0" / "reference_losses" / "reference_losses.arrow")
    one = read_table(tmp_path / "single" / "reference_losses.arrow")
    np.testing.assert_allclose(np.asarray(two.column(0).to_pylist()), np.asarray(one.column(0).to_pylist()),
                               rtol=0, atol=1e-5)
    assert not (out / "doremi" / "round0" / "reference_losses" / "_parts").exists()
