"""`curricula analyze`: block fates, report, excerpts with text, and plots from a hand-built run folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curricula.analysis import analyze_run, format_report
from curricula.methods.lfr.fates import summarize_fates
from curricula.logs import write_epoch_log
from curricula.methods.lfr.plan import PhaseEpoch
from curricula.data.corpus import write_corpus
from curricula.data.pack import PackConfig, load_blocks, pack_corpus
from curricula.data.tokenizers import load_tokenizer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CODE_WORDS = "def return import class value list".split()  # one GPT-2 token each
PROSE_WORDS = "river moon garden light house water".split()

# The plan: learn, focus (drop 40%), review, focus (drop 60%), review. Blocks 0-5 are "code", 6-9 "prose".
EPOCHS = [(0, 0, "learn", None), (1, 1, "focus", 40.0), (2, 2, "review", None), (3, 3, "focus", 60.0), (4, 4, "review", None)]
NAN, INF = float("nan"), float("inf")
# block -> perplexity per epoch (None: not trained that epoch, i.e. dropped by the focus)
TRAJ = {
    0: [100, 50, 80, 40, 90],  # forgotten twice; rise 90/40
    1: [100, 70, 75, 60, 62],  # forgotten twice; rise 62/60
    2: [100, 60, 90, None, 95],  # forgotten once
    3: [100, None, 50, None, 30],  # learned
    4: [100, 120, 150, None, 160],  # unlearned
    5: [100, None, NAN, None, 60],  # learned; one NaN visit
    6: [200, 100, 300, 150, 400],  # forgotten twice; rise 400/100: the most forgotten
    7: [500, 900, 1500, 1800, 2000],  # unlearned, the hardest
    8: [300, None, INF, None, INF],  # one finite visit only
    9: [80, None, 40, None, 20],  # learned
}
FOCUS_KEPT = {1: [0, 1, 2, 4, 6, 7], 3: [0, 1, 6, 7]}


def _docs():
    # code: 383 single-token words + EOS = 384 tokens = 6 blocks of 64; prose: 255 + 1 = 4 blocks
    code = " ".join(CODE_WORDS[i % 6] for i in range(6 * 64 - 1))
    prose = " ".join(PROSE_WORDS[(i * 5) % 6] for i in range(4 * 64 - 1))
    return [
        {"text": code, "domain": "code", "source": "syn", "doc_id": "code/0"},
        {"text": prose, "domain": "prose", "source": "syn", "doc_id": "prose/0"},
    ]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_corpus(_docs(), root / "corpus", val_fraction=0.0)
    pack_corpus(root / "corpus", root / "packed", PackConfig(block_size=64), splits=("train",))
    blocks = load_blocks(root / "packed", "train")
    assert np.asarray(blocks["domain_id"]).tolist() == [0] * 6 + [1] * 4  # the layout TRAJ assumes
    return root / "packed"


def make_run(root: Path, packed: Path | None, focus: bool = True) -> Path:
    run = root / "run"
    log_dir = run / "curriculum"
    epochs = EPOCHS if focus else [(0, 0, "learn", None), (1, 1, "review", None), (2, 2, "review", None)]
    offset, plan_epochs = 0, []
    for e, (index, phase_index, kind, drop) in enumerate(epochs):
        col = e if focus else [0, 2, 4][e]
        ids = [b for b in TRAJ if TRAJ[b][col] is not None]
        steps = offset + np.arange(len(ids)) // 2 + 1  # global batch 2
        records = {
            "block_id": np.array(ids, np.int64),
            "domain_id": np.array([0 if b < 6 else 1 for b in ids], np.int32),
            "step": steps.astype(np.int64),
            "loss": np.log(np.array([TRAJ[b][col] for b in ids], np.float64)).astype(np.float32),
        }
        write_epoch_log(log_dir, PhaseEpoch(index, phase_index, kind, 0, drop), records)
        plan_epochs.append({"index": index, "kind": kind, "phase_index": phase_index, "drop_percent": drop,
                            "blocks": len(ids), "steps": int(steps.max() - offset)})
        offset = int(steps.max())
    info = {"plan": {"name": "lfr-test"}, "seed": 0, "global_batch": 2, "n_blocks": 10,
            "domain_names": ["code", "prose", "legal"], "epochs": plan_epochs, "total_steps": offset}
    (log_dir / "plan.json").write_text(json.dumps(info))
    if focus:
        with open(log_dir / "focus_reports.jsonl", "w") as fh:
            for epoch, kept in FOCUS_KEPT.items():
                per = {"0": sum(b < 6 for b in kept), "1": sum(b >= 6 for b in kept)}
                fh.write(json.dumps({"epoch": epoch, "phase_index": epoch, "drop_percent": EPOCHS[epoch][3], "n_total": 10,
                                     "n_dropped": 10 - len(kept), "n_kept": len(kept), "n_nonfinite_kept": 0,
                                     "threshold_ppl": 100.0, "kept_per_domain": per}) + "\n")
    if packed is not None:
        (run / "_data.json").write_text(json.dumps({"packed": str(packed), "split": "train"}))
    return run


def assert_png(path):
    path = Path(path)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 10_000, (path, len(data))


def strict_json(path):
    def refuse(x):
        raise ValueError(f"non-standard JSON constant {x}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def analyzed(packed, tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("lfr"), packed)
    return run, analyze_run(run, top_k=3)


def test_fractions_overall_and_per_domain(analyzed):
    run, res = analyzed
    s = res["summary"]
    assert s["blocks"] == 10 and s["visits"] == 40 and s["nonfinite_visits"] == 3
    assert s["counts"] == {"unseen_or_once": 1, "learned": 3, "unlearned": 2, "forgotten": 4}
    assert s["fractions"]["forgotten"] == pytest.approx(0.4)
    assert s["forgotten_multiple"] == 3 and s["forgotten_multiple_share"] == pytest.approx(0.75)
    assert s["forgotten_of_revisited"] == pytest.approx(4 / 9)
    code, prose, legal = (s["per_domain"][d] for d in ("code", "prose", "legal"))
    assert code["counts"] == {"unseen_or_once": 0, "learned": 2, "unlearned": 1, "forgotten": 3}
    assert code["forgotten_multiple_share"] == pytest.approx(2 / 3) and code["nonfinite_visits"] == 1
    assert prose["counts"] == {"unseen_or_once": 1, "learned": 1, "unlearned": 1, "forgotten": 1}
    assert prose["forgotten_multiple_share"] == 1.0 and prose["nonfinite_visits"] == 2
    assert legal["blocks"] == 0 and legal["domain_id"] == 2  # a domain with no blocks is listed, not an error
    # fates.parquet: one row per block, summarizes to the same numbers
    fates = pq.read_table(run / "analysis" / "fates.parquet")
    assert fates.column("block_id").to_pylist() == list(range(10))
    assert fates.column("times_forgotten").to_pylist() == [2, 2, 1, 0, 0, 0, 2, 0, 0, 0]
    assert fates.column("domain").to_pylist()[5:7] == ["code", "prose"]
    assert fates.column("nonfinite_visits").to_pylist() == [0, 0, 0, 0, 0, 1, 0, 0, 2, 0]
    assert fates.column("min_ppl").to_numpy()[0] == pytest.approx(40, rel=1e-5)
    assert summarize_fates(fates)["counts"] == s["counts"]


def test_summary_json_and_report(analyzed):
    run, res = analyzed
    out = run / "analysis"
    summary = strict_json(out / "summary.json")  # NaN written as null
    assert summary["summary"]["per_domain"]["legal"]["forgotten_multiple_share"] is None
    assert summary["summary"]["fractions"]["forgotten"] == pytest.approx(0.4)
    report = (out / "report.md").read_text()
    assert report == format_report(res)
    assert "paper: 25%" in report and "paper: 82%" in report
    assert "40.0%" in report and "75.0%" in report  # ours, next to them
    assert "| code | 6 |" in report and "| prose | 4 |" in report and "| legal | 0 |" in report
    assert "3 of 40 visits" in report  # non-finite losses counted
    assert "e2 review 2" in report  # per-epoch non-finite count (block 5 NaN + block 8 inf in epoch 2)
    # focus table: code kept 4/6 then 2/6, prose 2/4 twice
    assert [round(f["kept_share_per_domain"]["code"], 3) for f in res["focus"]] == [0.667, 0.333]
    assert [f["kept_share_per_domain"]["prose"] for f in res["focus"]] == [0.5, 0.5]
    assert "66.7%" in report and "33.3%" in report


def test_excerpts_order_trajectory_and_text(analyzed, packed):
    _, res = analyzed
    most = res["excerpts"]["most_forgotten"]
    assert [e["block_id"] for e in most] == [6, 0, 1]  # twice each, then by rise above the minimum: 4.0, 2.25, 1.03
    hardest = res["excerpts"]["hardest"]
    assert [e["block_id"] for e in hardest] == [7, 6, 8]  # last ppl 2000, 400, 300
    assert [round(t["ppl"]) for t in most[0]["trajectory"]] == [200, 100, 300, 150, 400]
    assert [t["phase"] for t in most[0]["trajectory"]] == ["learn", "focus", "review", "focus", "review"]
    assert res["text_note"] is None
    tok = load_tokenizer("gpt2")
    blocks = load_blocks(packed, "train")
    for ex in most + hardest:
        full = tok.decode(blocks[ex["block_id"]]["input_ids"])
        assert ex["text"].rstrip("…") == full[:300] and len(ex["text"]) <= 301
        words = CODE_WORDS if ex["domain"] == "code" else PROSE_WORDS
        assert any(w in ex["text"] for w in words)
    report = format_report(res)
    assert "e0 learn 200 → e1 focus 100 → e2 review 300 → e3 focus 150 → e4 review 400" in report
    assert "    " + hardest[0]["text"].splitlines()[0] in report  # the text, as an indented block
    assert "e2 review inf" in report  # block 8's inf visit is shown in its trajectory


def test_plots_are_pngs(analyzed):
    run, res = analyzed
    out = run / "analysis"
    for name in ("ppl_histogram_per_phase", "domain_ppl_over_training", "focus_domain_share"):
        assert res["plots"][name] == str(out / f"{name}.png")
        assert_png(out / f"{name}.png")


def test_no_focus_no_data_json_and_out_dir(tmp_path):
    run = make_run(tmp_path, packed=None, focus=False)
    out = tmp_path / "elsewhere"
    res = analyze_run(run / "curriculum", out_dir=out, top_k=2)  # RUN_DIR/curriculum works too
    assert res["run_dir"] == str(run)
    assert res["plots"]["focus_domain_share"] is None and not (out / "focus_domain_share.png").exists()
    assert_png(out / "ppl_histogram_per_phase.png")
    assert_png(out / "domain_ppl_over_training.png")
    assert res["text_note"] == "text unavailable: no _data.json"
    report = (out / "report.md").read_text()
    assert "No focus decision in this run." in report and "text unavailable: no _data.json" in report
    assert len(res["excerpts"]["hardest"]) == 2 and all(e["text"] is None for e in res["excerpts"]["hardest"])
    s = res["summary"]
    # without the focus epochs: blocks 0 (100, 80, 90) and 2 (100, 90, 95) are forgotten once, 1 (100, 75, 62) learned
    assert s["counts"] == {"unseen_or_once": 1, "learned": 4, "unlearned": 3, "forgotten": 2}
    assert s["forgotten_multiple"] == 0 and s["forgotten_multiple_share"] == 0.0
    strict_json(out / "summary.json")


def test_text_unavailable_when_packed_data_is_missing(tmp_path):
    run = make_run(tmp_path, packed=tmp_path / "nowhere")
    res = analyze_run(run, top_k=1)
    assert res["text_note"].startswith("text unavailable:")
    assert res["excerpts"]["hardest"][0]["block_id"] == 7 and res["excerpts"]["hardest"][0]["text"] is None


def test_all_losses_nonfinite_still_writes_plots(tmp_path):
    log_dir = tmp_path / "run" / "curriculum"
    for index, kind in enumerate(["learn", "review"]):
        rec = {"block_id": np.arange(3, dtype=np.int64), "domain_id": np.zeros(3, np.int32),
               "step": np.array([1, 1, 2], np.int64) + 2 * index, "loss": np.array([NAN, INF, -INF], np.float32)}
        write_epoch_log(log_dir, PhaseEpoch(index, index, kind, 0), rec)
    res = analyze_run(tmp_path / "run")
    assert res["summary"]["counts"]["unseen_or_once"] == 3 and res["summary"]["nonfinite_visits"] == 6
    assert res["excerpts"] == {"most_forgotten": [], "hardest": []}
    assert any("plan.json missing" in n for n in res["notes"])
    for name in ("ppl_histogram_per_phase", "domain_ppl_over_training"):
        assert_png(tmp_path / "run" / "analysis" / f"{name}.png")
    assert "No block was forgotten." in format_report(res)


def test_pure_no_torch_or_transformers():
    code = ("import sys, curricula.analysis; "
            "bad = [m for m in ('torch', 'transformers', 'matplotlib.pyplot') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
