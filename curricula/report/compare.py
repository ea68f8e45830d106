"""The report of ``curricula compare``: which method pays on this data, at this budget (pure: numbers in, page out).

From every (method, seed) run's final held-out metrics, evaluation curve, cost and weights:

* a table per method: average and worst-domain perplexity (mean ± standard deviation over seeds); the paired
  difference of average log-perplexity against ``uniform`` in each seed; per-domain wins against ``uniform`` (domains
  with a lower perplexity, per seed); the compute at which the method first reached uniform's final held-out loss
  (and the speed-up that makes); wall-clock per step against uniform's; the budget it used;
* plots: held-out loss over the budget (mean over seeds) and each online method's weights over time;
* a plain recommendation: the methods that beat ``uniform`` on both the average and the worst domain in every seed,
  or, when none does, that uniform weights are the choice at this budget, with what the curves suggest.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

BASELINE = "uniform"


def _ppl(final: dict, key: str) -> float:
    v = final.get(key)
    return float(v) if v is not None else float("nan")


def _mean_sd(values: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v == v], dtype=np.float64)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")


def _first_reach(curve: list[dict], target: float) -> float | None:
    for point in curve:
        if point["loss"] <= target:
            return float(point["step"])
    return None


def build_report(results: list[dict], domains: list[str], config: dict) -> dict:
    """The report's numbers, per method (in the order first seen) and overall."""
    methods = list(dict.fromkeys(r["method"] for r in results))
    seeds = sorted({r["seed"] for r in results})
    by = {(r["method"], r["seed"]): r for r in results}
    base = {s: by.get((BASELINE, s)) for s in seeds}
    rows = []
    for m in methods:
        runs = [by[(m, s)] for s in seeds if (m, s) in by]
        avg = [_ppl(r["final"], "eval_ppl_avg") for r in runs]
        worst = [_ppl(r["final"], "eval_ppl_worst") for r in runs]
        row = {"method": m, "seeds": [r["seed"] for r in runs], "ppl_avg": _mean_sd(avg), "ppl_worst": _mean_sd(worst),
               "compute_steps": _mean_sd([r.get("compute_steps", float("nan")) for r in runs]),
               "weights": np.mean([r["weights"] for r in runs if r.get("weights")], axis=0).tolist()
               if any(r.get("weights") for r in runs) else None,
               "mixture": runs[0].get("mixture") if runs else None}
        diffs, wins, reach, overhead, beats = [], [], [], [], []
        for r in runs:
            b = base.get(r["seed"])
            if b is None:
                continue
            d = math.log(_ppl(r["final"], "eval_ppl_avg")) - math.log(_ppl(b["final"], "eval_ppl_avg"))
            diffs.append(d)
            dom = [math.log(_ppl(r["final"], f"eval_ppl/{n}")) < math.log(_ppl(b["final"], f"eval_ppl/{n}"))
                   for n in domains if f"eval_ppl/{n}" in r["final"] and f"eval_ppl/{n}" in b["final"]]
            wins.append(int(sum(dom)))
            target = b["final"].get("eval_loss")
            hit = _first_reach(r.get("curve", []), target) if target is not None else None
            reach.append(hit)
            if b.get("seconds_per_step") and r.get("seconds_per_step"):
                overhead.append(r["seconds_per_step"] / b["seconds_per_step"] - 1)
            beats.append(_ppl(r["final"], "eval_ppl_avg") < _ppl(b["final"], "eval_ppl_avg")
                         and _ppl(r["final"], "eval_ppl_worst") < _ppl(b["final"], "eval_ppl_worst"))
        budget = config.get("steps")
        row.update({"diff_log_ppl_avg": diffs, "diff_mean_sd": _mean_sd(diffs), "domain_wins": wins,
                    "reach_uniform_final": reach,
                    "speedup": [budget / h if h else None for h in reach] if budget else [],
                    "overhead_per_step": _mean_sd(overhead) if overhead else (float("nan"), float("nan")),
                    "beats_uniform_every_seed": bool(beats) and all(beats) and m != BASELINE})
        rows.append(row)
    winners = [r["method"] for r in rows if r["beats_uniform_every_seed"]]
    return {"domains": domains, "seeds": seeds, "config": config, "rows": rows, "winners": winners,
            "recommendation": _recommend(rows, winners, seeds, config)}


def _recommend(rows: list[dict], winners: list[str], seeds: list[int], config: dict) -> str:
    if not any(r["method"] == BASELINE for r in rows):
        return "No uniform baseline was run (add uniform to --methods): no method can be judged against it."
    n = len(seeds)
    if winners:
        best = min((r for r in rows if r["method"] in winners), key=lambda r: r["ppl_avg"][0])
        return (f"{', '.join(winners)} beat{'s' if len(winners) == 1 else ''} uniform weights on both the average and "
                f"the worst-domain held-out perplexity in every seed ({n}) at {config.get('steps')} steps of total "
                f"compute; {best['method']} has the lowest average ({best['ppl_avg'][0]:.2f} vs uniform's "
                f"{next(r for r in rows if r['method'] == BASELINE)['ppl_avg'][0]:.2f}). Use it on this data.")
    near = [r for r in rows if r["method"] != BASELINE and r["diff_log_ppl_avg"]
            and all(d < 0 for d in r["diff_log_ppl_avg"])]
    text = (f"No method beats uniform weights on both the average and the worst-domain held-out perplexity in every "
            f"seed ({n}) at {config.get('steps')} steps of total compute: use uniform weights on this data at this "
            "budget.")
    if near:
        text += (" " + ", ".join(r["method"] for r in near) + " lower the average in every seed but not the worst "
                 "domain; they may pay where the worst domain matters less.")
    slow = [r for r in rows if r["method"] in ("doremi", "doremi_online")]
    if slow:
        text += (" Methods that spend part of the budget on reference or proxy runs need a budget where those runs "
                 "are a small share (e.g. a main run 10x longer than the proxy) to catch up.")
    return text


def _fmt(pair: tuple[float, float], digits: int = 2) -> str:
    m, s = pair
    return "–" if m != m else (f"{m:.{digits}f} ± {s:.{digits}f}" if s == s else f"{m:.{digits}f}")


def report_markdown(report: dict, plots: list[str]) -> str:
    cfg = report["config"]
    lines = [f"# curricula compare: {len(report['rows'])} methods, seeds {report['seeds']}", "",
             f"Data `{cfg.get('packed')}` ({len(report['domains'])} domains); budget {cfg.get('steps')} optimizer "
             f"steps of {cfg.get('batch_size')} blocks per device for every method (its reference/proxy runs and "
             f"forward-only passes counted); model {cfg.get('model')}; held-out evaluation on {cfg.get('eval_blocks')} "
             "blocks.", "", "## Recommendation", "", report["recommendation"], "", "## Results", "",
             "| method | avg ppl | worst-domain ppl | Δ avg log-ppl vs uniform (per seed) | domains better than "
             "uniform (per seed) | compute to reach uniform's final loss | speed-up | time/step vs uniform | "
             "compute used |", "|---|---|---|---|---|---|---|---|---|"]
    n_dom = len(report["domains"])
    for r in report["rows"]:
        diffs = ", ".join(f"{d:+.3f}" for d in r["diff_log_ppl_avg"]) or "–"
        wins = ", ".join(f"{w}/{n_dom}" for w in r["domain_wins"]) if r["method"] != BASELINE else "–"
        reach = ", ".join("–" if h is None else f"{h:.0f}" for h in r["reach_uniform_final"])
        speed = ", ".join("–" if s is None else f"{s:.2f}x" for s in r["speedup"])
        over = r["overhead_per_step"]
        over_s = "–" if over[0] != over[0] else f"{100 * over[0]:+.1f} %"
        name = r["method"] + (f" (over {r['mixture']})" if r.get("mixture") else "")
        lines.append(f"| {name} | {_fmt(r['ppl_avg'])} | {_fmt(r['ppl_worst'])} | {diffs} | {wins} | {reach or '–'} | "
                     f"{speed or '–'} | {over_s} | {_fmt(r['compute_steps'], 0)} |")
    weighted = [r for r in report["rows"] if r.get("weights")]
    if weighted:
        lines += ["", "## Weights at the end (mean over seeds)", "",
                  "| domain | " + " | ".join(r["method"] for r in weighted) + " |",
                  "|---|" + "---|" * len(weighted)]
        for d, name in enumerate(report["domains"]):
            lines.append(f"| {name} | " + " | ".join(f"{r['weights'][d]:.3f}" for r in weighted) + " |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    lines += ["", "Δ avg log-ppl: the method's log of its average held-out perplexity minus uniform's, in the same "
              "seed (negative: better). Compute: optimizer steps of the global batch, with forward-only passes at "
              "1/3 of a step per block.", ""]
    return "\n".join(lines)


def plot_curves(results: list[dict], path: Path) -> Path:
    from curricula.report.plots import figure, save_figure

    fig = figure(8, 4.5)
    ax = fig.subplots()
    for i, m in enumerate(dict.fromkeys(r["method"] for r in results)):
        curves = [r["curve"] for r in results if r["method"] == m and r.get("curve")]
        if not curves:
            continue
        steps = sorted({p["step"] for c in curves for p in c})
        mean = [np.mean([p["loss"] for c in curves for p in c if p["step"] == s]) for s in steps]
        ax.plot(steps, mean, lw=1.5, color=f"C{i % 10}", label=m)
    ax.set_xlabel("compute (optimizer steps of the global batch, all of the method's runs)")
    ax.set_ylabel("held-out loss (mean over seeds)")
    ax.set_title("Held-out loss over the budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.set_dpi(110)
    return save_figure(fig, path)


def plot_weight_trajectories(histories: dict[str, dict], domains: list[str], path: Path) -> Path:
    """``histories``: method -> ``read_weights_history`` output (one seed)."""
    from curricula.report.plots import figure, save_figure

    k = len(histories)
    fig = figure(4.2 * k, 3.8)
    axes = fig.subplots(1, k, sharey=True, squeeze=False)[0]
    for ax, (m, h) in zip(axes, histories.items()):
        for d in range(len(domains)):
            ax.plot(h["step"], h["weights"][:, d], lw=1, label=domains[d])
        ax.set_title(f"{m} (the proxy's alpha)" if m == "doremi" else m)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("sampling weight")
    axes[-1].legend(fontsize=6, loc="upper right")
    fig.set_dpi(110)
    return save_figure(fig, path)


def write_report(report: dict, results: list[dict], out: Path) -> list[Path]:
    """``report.md``, ``report.json``, ``results.json``, ``val_loss.png`` and ``weights.png`` under ``out``."""
    from curricula.methods.online import read_weights_history
    from curricula.run_layout import write_json, write_text

    out = Path(out)
    written = [plot_curves(results, out / "val_loss.png")]
    histories = {}
    seed0 = min(report["seeds"]) if report["seeds"] else 0
    for m in dict.fromkeys(r["method"] for r in results):
        found = sorted((out / "runs" / m / f"seed{seed0}").glob("**/weights_history.parquet"))
        if found:
            histories[m] = read_weights_history(found[0])
    if histories:
        written.append(plot_weight_trajectories(histories, report["domains"], out / "weights.png"))
    written.append(write_text(out / "report.md", report_markdown(report, [str(p) for p in written])))
    written.append(write_json(out / "report.json", report))
    written.append(write_json(out / "results.json", results))
    return written
