"""Plots of what a run's curriculum did: domain weights per step and per round, continual stages' validation loss.

Pure (``curricula.report.plots``: matplotlib's Agg canvas, no pyplot state, atomic PNG writes); each function draws
from plain data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curricula.report.plots import figure as _figure, save_figure


def plot_weights(steps: np.ndarray, weights: np.ndarray, names: list[str], path: Path,
                 average: np.ndarray | None = None, title: str = "domain weights per step") -> Path:
    """Per-step weights ([steps, domains]) and, when given, their running average (DoReMi's output)."""
    fig = _figure(9 if average is not None else 5.5, 4.5)
    axes = fig.subplots(1, 2, sharey=True) if average is not None else [fig.subplots()]
    for d, name in enumerate(names):
        (line,) = axes[0].plot(steps, weights[:, d], lw=1, label=name)
        if average is not None:
            axes[1].plot(steps, average[:, d], lw=1.5, color=line.get_color())
    axes[0].set_title(title)
    if average is not None:
        axes[1].set_title("running average (DoReMi's output)")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.set_dpi(110)
    return save_figure(fig, path)


def plot_rounds(rounds: list[dict], names: list[str], path: Path) -> Path:
    """DoReMi's weights of every round next to the baseline."""
    fig = _figure(max(6, 1.1 * len(names)), 4)
    ax = fig.subplots()
    width = 0.8 / (len(rounds) + 1)
    x = np.arange(len(names))
    ax.bar(x, rounds[0]["reference_weights"], width, label="baseline (round 0 reference)", color="0.7")
    for i, r in enumerate(rounds):
        ax.bar(x + (i + 1) * width, r["weights"], width, label=f"round {r['round']} (L1 change {r['l1_change']:.3f})")
    ax.set_xticks(x + width * len(rounds) / 2, names, rotation=20)
    ax.set_ylabel("domain weight")
    ax.set_title("DoReMi domain weights per round")
    ax.legend(fontsize=8)
    fig.set_dpi(110)
    return save_figure(fig, path)


def plot_continual(result: dict, path: Path) -> Path:
    """Validation loss of every stage's data over global steps; one line style per last-stage variant."""
    fig = _figure(9, 4.5)
    ax = fig.subplots()
    offset = sum(s["steps"] for s in result["stages"])
    keys = sorted({k for s in result["stages"] + result["last_stage_variants"] for h in s["curve"] for k in h
                   if k.startswith("eval_") and k.endswith("_loss")})
    colors = {k: f"C{i}" for i, k in enumerate(keys)}
    start = 0
    for s in result["stages"]:
        for k in keys:
            pts = [(start + h["step"], h[k]) for h in s["curve"] if k in h]
            if pts:
                ax.plot(*zip(*pts), color=colors[k], lw=1.5)
        start += s["steps"]
        ax.axvline(start, color="0.5", ls=":", lw=1)
    styles = ["-", "--", "-.", ":"]
    for v_i, v in enumerate(result["last_stage_variants"]):
        for k in keys:  # each line starts from the state the variant branched from
            pts = [(offset, v["before"][k])] if k in v["before"] else []
            pts += [(offset + h["step"], h[k]) for h in v["curve"] if k in h]
            if pts:
                label = f"{k[5:-5]} data, last stage replay {100 * v['replay']:.0f}%"
                ax.plot(*zip(*pts), color=colors[k], ls=styles[v_i % 4], lw=1.2, label=label)
    ax.set_xlabel("optimizer step (all stages)")
    ax.set_ylabel("validation loss")
    ax.set_title("Continual pretraining: validation loss on each stage's data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.set_dpi(110)
    return save_figure(fig, path)
