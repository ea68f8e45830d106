"""The evidence tables in docs/results.md are rebuilt exactly from the committed raw results (docs/experiments)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts" / "experiments"))

import collect  # noqa: E402


def test_first_reach_interpolates_and_reports_never():
    assert collect.first_reach([50, 100, 150], [6.0, 5.0, 4.0], 4.5) == pytest.approx(125.0)
    assert collect.first_reach([50, 100], [6.0, 5.0], 6.5) == 50.0  # already below at the first evaluation
    assert collect.first_reach([50, 100], [6.0, 5.0], 4.0) is None


def test_mean_and_sample_std():
    assert collect.ms([1.0, 2.0, 3.0]) == "2.000 ± 1.000"
    assert collect.ms([0.5]) == "0.500"
    assert collect.ms([]) == "–"
    assert collect.ms([-0.1, 0.1], "+.2f") == "+0.00 ± 0.14"


@pytest.mark.skipif(not (ROOT / "docs" / "experiments").is_dir(), reason="no committed raw results")
def test_results_page_tables_rebuild_from_the_raw_results(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "SOURCE", collect.RAW)
    monkeypatch.setattr(collect, "ROOT", tmp_path)
    monkeypatch.setattr(collect, "FIG", tmp_path / "docs" / "figures")
    page = (ROOT / "docs" / "results.md").read_text()
    part = collect.page_part()
    assert "Not run yet" not in part
    assert f"{collect.BEGIN}\n{part}\n{collect.END}" in page  # every table, difference and command on the page
    assert {p.name for p in (tmp_path / "docs" / "figures").iterdir()} == {
        "exp_lfr_vs_random.png", "exp_doremi.png", "exp_continual.png", "exp_lfr_vs_random_spread.png",
        "exp_r2_forgetting.png", "exp_r2_doremi.png", "exp_r2_smollm2.png"}
