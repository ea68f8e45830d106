"""``curricula compare`` end to end on tiny data: two methods, one seed, a few steps; the report's table, its
recommendation and plots; a rerun reuses the finished runs."""

import json

import pytest


@pytest.fixture(scope="module")
def compared(tiny_packed, tmp_path_factory):
    from hf_trainer_ext.cli import main

    out = tmp_path_factory.mktemp("compare")
    argv = ["compare", "--packed", str(tiny_packed), "--out", str(out), "--methods", "uniform", "odm", "--seeds", "0",
            "--steps", "12", "--batch-size", "4", "--model", "1,32,2", "--eval-blocks", "12", "--eval-every", "4",
            "--mixing-eval-blocks", "6", "--training", '{"disable_tqdm": true}']
    assert main(argv) == 0
    return out, argv


def test_the_report_has_a_row_per_method_and_the_plots(compared):
    out, _ = compared
    report = json.loads((out / "report.json").read_text())
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["uniform", "odm"] and report["seeds"] == [0]
    assert report["domains"] == ["code", "legal", "prose"]
    for r in rows.values():  # perplexities are real numbers from the held-out evaluation
        assert r["ppl_avg"][0] > 1 and r["ppl_worst"][0] >= r["ppl_avg"][0]
    odm = rows["odm"]
    assert len(odm["diff_log_ppl_avg"]) == 1 and 0 <= odm["domain_wins"][0] <= 3
    assert len(odm["weights"]) == 3 and abs(sum(odm["weights"]) - 1) < 1e-6  # the mixer's final weights
    assert rows["uniform"]["compute_steps"][0] == odm["compute_steps"][0] == 12  # the same total compute
    md = (out / "report.md").read_text()
    assert "## Recommendation" in md and report["recommendation"] in md
    table = [line for line in md.splitlines() if line.startswith("| uniform |") or line.startswith("| odm |")]
    assert len(table) == 2 and table[1].count("|") == 10  # nine columns
    assert "## Weights at the end" in md and "![val_loss](val_loss.png)" in md
    for plot in ("val_loss.png", "weights.png"):
        data = (out / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_a_rerun_reuses_the_finished_runs(compared, capsys):
    from hf_trainer_ext.cli import main

    out, argv = compared
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    assert main(argv) == 0
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    assert after == before  # nothing trained again
    assert json.loads((out / "report.json").read_text())["rows"][0]["method"] == "uniform"


def test_help_lists_the_methods_and_the_budget():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "hf_trainer_ext", "compare", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--methods", "--seeds", "--steps", "--model", "--method-params", "aioli"):
        assert flag in proc.stdout


@pytest.mark.parametrize("eval_blocks", [100, 50, 7])
def test_aiolis_steps_and_held_out_measurements_fill_the_budget(eval_blocks):
    """Aioli's optimizer steps plus its forward-only measurements (counted from its own schedule, on the mixing set's
    real size) add up to the budget, short of it by less than one round's measurements."""
    import numpy as np

    from curricula.methods import load_recipe
    from curricula.methods.seam import DataInfo, RunInfo
    from hf_trainer_ext.pipelines.compare import _steps_within_budget
    from hf_trainer_ext.pipelines.compare_config import FORWARD_COST, CompareConfig, budget_params

    domains, budget, batch = 20, 1000, 16
    cfg = CompareConfig(steps=budget, batch_size=batch, mixing_eval_blocks=100)
    config = load_recipe("aioli", **budget_params("aioli", budget, domains))
    steps = _steps_within_budget(cfg, config, domains, eval_blocks)
    cur = config.build(DataInfo(np.repeat(np.arange(domains), 5), [f"d{i}" for i in range(domains)]),
                       RunInfo(batch, steps, 0))
    evals = sum(cur.wants_eval(s) for s in range(steps + 1))
    used = steps + evals * eval_blocks * FORWARD_COST / batch
    assert budget - eval_blocks * FORWARD_COST / batch * (domains + 1) <= used <= budget
