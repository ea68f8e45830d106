"""Collect the experiments' results into docs/results.md (between the ``experiments`` markers) and docs/figures/.

    python scripts/experiments/collect.py

Every number is mean ± sample std over the seeds that finished (the count is printed next to each table); a
``result.json`` holds the exact command, commit and hardware of its run. Copies each result of ``runs/experiments*``
to ``docs/experiments`` (committed) and builds the page from those copies, so a fresh clone rebuilds it exactly.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DOREMI_SWEEP, ROOT, RUNS  # noqa: E402

DOC = ROOT / "docs" / "results.md"
RAW = ROOT / "docs" / "experiments"  # a committed copy of every result.json: the tables can be rebuilt from a clone
FIG = ROOT / "docs" / "figures"
BEGIN, END = "<!-- experiments:begin (scripts/experiments/collect.py writes this part) -->", "<!-- experiments:end -->"


SPREAD = RUNS.parent / "experiments-spread"  # the LFR check on `--cap spread` data (raw copies: lfr-spread/)
R2 = RUNS.parent / "experiments-r2"  # round 2 (raw copies: r2/)


def load(pattern: str) -> list[dict]:
    root = SOURCE
    if SOURCE == RUNS and pattern.startswith("lfr-spread/"):
        root, pattern = SPREAD, "lfr/" + pattern[len("lfr-spread/"):]
    if SOURCE == RUNS and pattern.startswith("r2/"):
        root, pattern = R2, pattern[len("r2/"):]
    return [json.loads(p.read_text()) for p in sorted(root.glob(pattern))]


def save_raw() -> None:
    """Copy each run's result.json to docs/experiments/<experiment>/<run>/result.json."""
    pairs = [(p, RAW / p.relative_to(RUNS)) for p in sorted(RUNS.glob("*/*/result.json"))]
    pairs += [(p, RAW / "lfr-spread" / p.relative_to(SPREAD / "lfr")) for p in sorted(SPREAD.glob("lfr/*/result.json"))]
    pairs += [(p, RAW / "r2" / p.relative_to(R2)) for p in sorted(R2.glob("*/*/result.json"))]
    for path, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())


SOURCE = RUNS


def ms(xs, fmt: str = ".3f") -> str:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:{fmt}}"
    return f"{np.mean(xs):{fmt}} ± {np.std(xs, ddof=1):{fmt.lstrip('+')}}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def domain_loss(e: dict, d: str) -> float:
    return float(np.log(e[f"eval_ppl/{d}"]))


def avg_loss(e: dict, names: list[str]) -> float:
    """Uniform average over domains of the log perplexity (DoReMi's 'average' metric, in loss units)."""
    return float(np.mean([domain_loss(e, d) for d in names]))


def first_reach(steps: list[float], values: list[float], target: float) -> float | None:
    """The first (linearly interpolated) step at which a curve reaches ``target`` or below; None if it never does."""
    prev_s, prev_v = 0.0, None
    for s, v in zip(steps, values):
        if v <= target:
            if prev_v is None or prev_v == v:
                return float(s)
            return prev_s + (s - prev_s) * (prev_v - target) / (prev_v - v)
        prev_s, prev_v = s, v
    return None


def commands(results: list[dict]) -> str:
    seen = []
    for r in results:
        c = re.sub(r"\S*/(scripts/experiments/)", r"\1", r["command"])  # relative to the repository
        c = re.sub(r"\S*/(runs/)", r"\1", c)
        if c not in seen:
            seen.append(c)
    return "```bash\n" + "\n".join(seen) + "\n```"


def figure(path: Path, draw, size=(9, 4)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    draw(fig)
    fig.tight_layout()
    FIG.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path.relative_to(ROOT / "docs")


def style(ax, xlabel: str, ylabel: str, title: str, legend_size: int = 7) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def band(ax, curves: list[tuple[list, list]], label: str, color: str):
    """Mean curve with a min-max band over seeds (the seeds share their evaluation steps)."""
    n = min(len(c[0]) for c in curves)
    x = np.asarray(curves[0][0][:n], dtype=float)
    y = np.array([c[1][:n] for c in curves], dtype=float)
    ax.plot(x, y.mean(0), color=color, label=f"{label} (n={len(curves)})")
    if len(curves) > 1:
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2)


# ---------------------------------------------------------------------------------------------------------------


def lfr_section(folder: str = "lfr", title: str = "LFR vs random sampling at equal tokens",
                fig_name: str = "exp_lfr_vs_random.png", data: str = "512 per domain: its first blocks") -> str:
    lfr, rnd = load(f"{folder}/lfr-seed*/result.json"), load(f"{folder}/random-seed*/result.json")
    if not lfr or not rnd:
        return f"### {title}\n\nNot run yet (`python scripts/experiments/run_all.py --only {folder}`).\n"
    names = lfr[0]["domain_names"]
    tps = lfr[0]["tokens_per_step"]
    out = [f"### {title}",
           f"{len(lfr)} LFR and {len(rnd)} random seeds; {lfr[0]['n_blocks']:,} blocks of 128 tokens ({data}), "
           f"{lfr[0]['steps']} steps of {tps:,} tokens ({lfr[0]['steps'] * tps / 1e6:.2f} M tokens) for "
           f"both; the LFR plan is `lfr` with reps={lfr[0]['reps']} (learn 1 epoch, focus on the hardest 50 %, "
           "review, focus on the hardest 30 % twice: 3.1 epochs-equivalent); random = shuffled epochs for the "
           "same steps. Validation: 350 blocks, 50 per domain; loss = mean token loss (nats).", ""]
    rows = []
    for label, rs in (("random", rnd), ("LFR", lfr)):
        fin = [r["evals"][-1] for r in rs]
        rows.append([label, ms([e["eval_loss"] for e in fin])] + [ms([domain_loss(e, d) for e in fin]) for d in names]
                    + [ms([e["eval_ppl_worst"] for e in fin], ".1f")])
    out += ["Final validation loss (overall and per domain) and worst-domain perplexity:", "",
            table(["", "overall", *names, "worst ppl"], rows), ""]
    # tokens LFR needs to reach random's final loss (paired by seed)
    by_seed = {r["seed"]: r for r in rnd}
    pairs = [(r, by_seed[r["seed"]]) for r in lfr if r["seed"] in by_seed]
    d_loss = [a["evals"][-1]["eval_loss"] - b["evals"][-1]["eval_loss"] for a, b in pairs]
    d_worst = [a["evals"][-1]["eval_ppl_worst"] - b["evals"][-1]["eval_ppl_worst"] for a, b in pairs]
    out += [f"Paired by seed (same init and evaluation points), LFR − random: overall loss {ms(d_loss)} "
            f"(per seed: {', '.join(f'{x:+.3f}' for x in d_loss)}); worst-domain perplexity {ms(d_worst, '.1f')}.", ""]
    reach, reverse = [], []
    for r in lfr:
        b = by_seed.get(r["seed"])
        if b is None:
            continue
        target = b["evals"][-1]["eval_loss"]
        s = first_reach([e["step"] for e in r["evals"]], [e["eval_loss"] for e in r["evals"]], target)
        reach.append((r["seed"], s, b["steps"]))
        t = r["evals"][-1]["eval_loss"]
        reverse.append(first_reach([e["step"] for e in b["evals"]], [e["eval_loss"] for e in b["evals"]], t))
    cells = []
    for seed, s, total in reach:
        cells.append(f"seed {seed}: " + (f"{s * tps / 1e6:.2f} M tokens ({total / s:.2f}× fewer than random's "
                                          f"{total * tps / 1e6:.2f} M)" if s else "not reached within the run"))
    out += ["Tokens LFR needs to reach random's final validation loss (evaluations every 50 steps, interpolated): "
            + "; ".join(cells) + ".", ""]
    fr = [x for x in reverse if x is not None]
    out += [f"Random reaches LFR's final loss in {len(fr)} of {len(reverse)} seeds"
            + (f" (at {ms([x * tps / 1e6 for x in fr], '.2f')} M tokens)." if fr else "."), ""]
    # fates
    kinds = ["learned", "unlearned", "forgotten"]
    rows = []
    for d in names + ["all"]:
        row = [d]
        for k in kinds:
            vals = [(r["fates"]["per_domain"][d] if d != "all" else r["fates"])["fractions"][k] * 100 for r in lfr]
            row.append(ms(vals, ".1f"))
        vals = [(r["fates"]["per_domain"][d] if d != "all" else r["fates"])["forgotten_multiple_share"] * 100
                for r in lfr]
        row.append(ms(vals, ".1f"))
        rows.append(row)
    out += ["LFR block fates (% of blocks; from the perplexities recorded in the training forward passes; "
            "the paper: 25 % forgotten, 82 % of those more than once):", "",
            table(["domain", "learned %", "unlearned %", "forgotten %", "forgotten >1× (% of forgotten)"], rows), ""]

    def draw(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for rs, label, c in ((rnd, "random", "C0"), (lfr, "LFR", "C3")):
            band(ax1, [([e["step"] * tps / 1e6 for e in r["evals"]], [e["eval_loss"] for e in r["evals"]]) for r in rs],
                 label, c)
        ax1.set_xlabel("training tokens (M)")
        ax1.set_ylabel("validation loss")
        ax1.set_title("LFR vs random: validation loss")
        ax1.legend()
        ax1.grid(alpha=0.3)
        x = np.arange(len(names))
        for i, (rs, label) in enumerate(((rnd, "random"), (lfr, "LFR"))):
            vals = np.array([[domain_loss(r["evals"][-1], d) for d in names] for r in rs])
            ax2.bar(x + 0.4 * i, vals.mean(0), 0.4, yerr=vals.std(0, ddof=1) if len(rs) > 1 else None, label=label,
                    color=f"C{3 * i}")
        ax2.set_xticks(x + 0.2, names, rotation=25, fontsize=8)
        ax2.set_ylim(bottom=min(domain_loss(r["evals"][-1], d) for r in rnd + lfr for d in names) - 0.5)
        ax2.set_ylabel("final validation loss")
        ax2.set_title("per domain")
        ax2.legend()
        ax2.grid(alpha=0.3, axis="y")

    fig = figure(FIG / fig_name, draw, (11, 4))
    out += [f"![LFR vs random]({fig})", "", commands(lfr + rnd), ""]
    return "\n".join(out)


def doremi_section() -> str:
    rs = load("doremi/seed*/result.json")
    if not rs:
        return "### DoReMi vs uniform vs token-proportional\n\nNot run yet.\n"
    names = rs[0]["domain_names"]
    steps, tps = rs[0]["steps"], rs[0]["tokens_per_step"]
    mains = ["uniform", "token_proportional", "doremi"]
    out = ["### DoReMi vs uniform vs token-proportional weights at equal steps",
           f"{len(rs)} seeds; 14,000 blocks (2,000 per domain); every reference, proxy and main model is the same "
           f"GPT-2 (2 layers, 128 wide) trained {steps} steps of {tps:,} tokens. Round 0's reference is trained on "
           "uniform weights, round 1's on round 0's weights; the proxies use cached reference losses (η = 1, "
           "smoothing 1e-3). The three main models share an init and see the same number of blocks. "
           "Token-proportional = the corpus' own token shares per domain (not the capped blocks).", ""]
    rows = []
    for i, d in enumerate(names):
        row = [d, f"{rs[0]['mains']['uniform']['weights'][i]:.3f}", f"{rs[0]['mains']['token_proportional']['weights'][i]:.3f}"]
        for rd in range(len(rs[0]["rounds"])):
            row.append(ms([r["rounds"][rd]["weights"][i] for r in rs if len(r["rounds"]) > rd]))
        rows.append(row)
    out += ["Domain weights found (mean ± std over seeds):", "",
            table(["domain", "uniform", "token-prop.", *[f"DoReMi round {k + 1}" for k in range(len(rs[0]["rounds"]))]],
                  rows), ""]
    l1 = [ms([r["rounds"][k]["l1_change"] for r in rs]) for k in range(len(rs[0]["rounds"]))]
    out += ["L1 change per round: " + ", ".join(f"round {k + 1}: {v}" for k, v in enumerate(l1)) + ".", ""]
    rows = []
    for m in mains:
        fin = [r["mains"][m]["evals"][-1] for r in rs]
        rows.append([m.replace("_", "-")] + [ms([e[f"eval_ppl/{d}"] for e in fin], ".1f") for d in names]
                    + [ms([e["eval_ppl_avg"] for e in fin], ".1f"), ms([e["eval_ppl_worst"] for e in fin], ".1f"),
                       ms([avg_loss(e, names) for e in fin])])
    out += [f"Main models after {steps} steps: validation perplexity per domain, its average and worst case, and the "
            "average log-perplexity (mean over domains of the loss):", "",
            table(["weights", *names, "avg ppl", "worst ppl", "avg loss"], rows), ""]
    wins = {m: sum(1 for i, d in enumerate(names) if np.mean([r["mains"][m]["evals"][-1][f"eval_ppl/{d}"] for r in rs])
                   < np.mean([r["mains"]["uniform"]["evals"][-1][f"eval_ppl/{d}"] for r in rs])) for m in mains[1:]}
    for m in mains[1:]:
        d = [avg_loss(r["mains"][m]["evals"][-1], names) - avg_loss(r["mains"]["uniform"]["evals"][-1], names) for r in rs]
        out += [f"Paired by seed, {m.replace('_', '-')} − uniform average loss: {ms(d)} "
                f"(per seed: {', '.join(f'{x:+.3f}' for x in d)})."]
    out += [""]
    out += ["Domains where the mean perplexity beats uniform's: "
            + ", ".join(f"{m.replace('_', '-')} {n} of {len(names)}" for m, n in wins.items()) + ".", ""]
    cells = []
    for m in mains[1:]:
        per = []
        for r in rs:
            target = avg_loss(r["mains"]["uniform"]["evals"][-1], names)
            ev = r["mains"][m]["evals"]
            s = first_reach([e["step"] for e in ev], [avg_loss(e, names) for e in ev], target)
            per.append(f"{s:.0f}" if s else "not reached")
        cells.append(f"{m.replace('_', '-')}: {', '.join(per)} (seeds {', '.join(str(r['seed']) for r in rs)})")
    out += [f"Steps to reach uniform's final average loss (uniform takes {steps}): " + "; ".join(cells) + ".", ""]

    def draw(fig):
        ax1, ax2 = fig.subplots(1, 2)
        x = np.arange(len(names))
        bars = [("uniform", [rs[0]["mains"]["uniform"]["weights"]]),
                ("token-prop.", [rs[0]["mains"]["token_proportional"]["weights"]])]
        bars += [(f"DoReMi round {k + 1}", [r["rounds"][k]["weights"] for r in rs]) for k in range(len(rs[0]["rounds"]))]
        w = 0.8 / len(bars)
        for i, (label, ws) in enumerate(bars):
            ws = np.array(ws)
            ax1.bar(x + i * w, ws.mean(0), w, yerr=ws.std(0, ddof=1) if len(ws) > 1 else None, label=label)
        ax1.set_xticks(x + 0.4 - w / 2, names, rotation=25, fontsize=8)
        ax1.set_ylabel("domain weight")
        ax1.set_title("weights")
        ax1.legend(fontsize=7)
        for m, c in zip(mains, ("C0", "C1", "C3")):
            band(ax2, [([e["step"] for e in r["mains"][m]["evals"]], [avg_loss(e, names) for e in r["mains"][m]["evals"]])
                       for r in rs], m.replace("_", "-"), c)
        ax2.set_xlabel("step")
        ax2.set_ylabel("average validation log-perplexity")
        ax2.set_title("main models")
        ax2.legend()
        ax2.grid(alpha=0.3)

    fig = figure(FIG / "exp_doremi.png", draw, (11, 4))
    out += [f"![DoReMi weights and main models]({fig})", "", commands(rs), ""]
    return "\n".join(out)


def infinite_text(inf: list[dict]) -> str:
    if not inf:
        return ""
    i = inf[0]["infinite"]
    return (f"Infinite: one schedule over both stages (warmup {i['warmup_steps']} steps to 2e-3, {i['cooldown']} "
            f"cooldown to {i['constant_lr']:g} over {i['cooldown_steps']} steps, constant, {i['anneal']} anneal to "
            f"{i['min_lr']:g} over the last {i['anneal_steps']} steps of D1): no re-warm at the switch. ")


def continual_section() -> str:
    rew, inf, uni = (load(f"continual/{v}-seed*/result.json") for v in ("rewarm", "infinite", "union"))
    if not rew:
        return "### Continual pretraining: English → German\n\nNot run yet.\n"
    d0, d1 = rew[0]["d0_steps"], rew[0]["d1_steps"]
    out = ["### Continual pretraining: English mix → German, replay and schedules",
           f"{len(rew)} / {len(inf)} / {len(uni)} seeds (re-warm / infinite / union). D0 = the seven English domains "
           f"(14,000 blocks), {d0} steps; D1 = German (5,000 blocks), {d1} steps; 2,048 tokens per step; D1 variants "
           "branch from the same end-of-D0 weights and AdamW state. Re-warm: each stage 1 % linear warmup to 2e-3, "
           "cosine to 2e-4. " + infinite_text(inf) +
           f"Union: {d0 + d1} steps from scratch, {d0}/{d0 + d1} of every batch English and {d1}/{d0 + d1} German. "
           "Validation loss on 350 English blocks (50 per domain) and 350 German blocks.", ""]
    rows = []

    def variant_rows(rs, label):
        for vi, v in enumerate(rs[0]["last_stage_variants"]):
            en0 = [r["stages"][0]["after"]["eval_en_loss"] for r in rs]
            de0 = [r["stages"][0]["after"]["eval_de_loss"] for r in rs]
            en1 = [r["last_stage_variants"][vi]["after"]["eval_en_loss"] for r in rs]
            de1 = [r["last_stage_variants"][vi]["after"]["eval_de_loss"] for r in rs]
            rows.append([f"{label}, replay {100 * v['replay']:.0f} %", ms(en0), ms(en1),
                         ms([b - a for a, b in zip(en0, en1)]), ms(de0), ms(de1), ms([a - b for a, b in zip(de0, de1)])])

    variant_rows(rew, "re-warm")
    if inf:
        variant_rows(inf, "infinite")
    if uni:
        rows.append(["union from scratch", "–", ms([r["union"]["after"]["eval_en_loss"] for r in uni]), "–", "–",
                     ms([r["union"]["after"]["eval_de_loss"] for r in uni]), "–"])
    out += ["Validation loss after D0 and after D1; forgetting = English loss increase over D1, adaptation = German "
            "loss decrease over D1:", "",
            table(["run", "en after D0", "en after D1", "forgetting (en Δ)", "de after D0", "de after D1",
                   "adaptation (de Δ)"], rows), ""]

    if uni:  # paired by seed: staged run minus the union reference, at the same total compute
        by_seed = {r["seed"]: r["union"]["after"] for r in uni}
        cells = []
        for rs, label in ((rew, "re-warm"), (inf, "infinite")):
            for vi, v in enumerate(rs[0]["last_stage_variants"] if rs else []):
                pairs = [(r["last_stage_variants"][vi]["after"], by_seed[r["seed"]]) for r in rs if r["seed"] in by_seed]
                cells.append(f"{label} + replay {100 * v['replay']:.0f} %: en {ms([a['eval_en_loss'] - b['eval_en_loss'] for a, b in pairs], '+.3f')}, "
                             f"de {ms([a['eval_de_loss'] - b['eval_de_loss'] for a, b in pairs], '+.3f')}")
        out += ["Paired by seed, staged run − union from scratch (negative: the staged run is better): "
                + "; ".join(cells) + ".", ""]

    def draw(fig):
        axes = fig.subplots(1, 2)
        for ax, key, title in zip(axes, ("eval_en_loss", "eval_de_loss"), ("English (D0) validation", "German (D1) validation")):
            sets = [(rew, "re-warm", "-"), (inf, "infinite", "--")]
            for rs, label, ls in sets:
                if not rs:
                    continue
                for vi, v in enumerate(rs[0]["last_stage_variants"]):
                    curves = []
                    for r in rs:
                        st = r["stages"][0]
                        xs = [h["step"] for h in st["curve"] if key in h]
                        ys = [h[key] for h in st["curve"] if key in h]
                        var = r["last_stage_variants"][vi]
                        xs += [d0] + [d0 + h["step"] for h in var["curve"] if key in h]
                        ys += [var["before"][key]] + [h[key] for h in var["curve"] if key in h]
                        curves.append((xs, ys))
                    n = min(len(c[0]) for c in curves)
                    y = np.array([c[1][:n] for c in curves]).mean(0)
                    ax.plot(curves[0][0][:n], y, ls=ls, color=f"C{vi}",
                            label=f"{label}, replay {100 * v['replay']:.0f} %")
            if uni:
                curves = [([h["step"] for h in r["union"]["curve"] if key in h], [h[key] for h in r["union"]["curve"] if key in h])
                          for r in uni]
                n = min(len(c[0]) for c in curves)
                ax.plot(curves[0][0][:n], np.array([c[1][:n] for c in curves]).mean(0), color="k", lw=1,
                        label="union from scratch")
            ax.axvline(d0, color="0.5", ls=":")
            ax.set_xlabel("step")
            ax.set_ylabel("validation loss")
            ax.set_title(title)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)

    fig = figure(FIG / "exp_continual.png", draw, (11, 4))
    out += [f"![continual pretraining]({fig})", "", "(Curves: mean over seeds.)", "", commands(rew + inf + uni), ""]
    return "\n".join(out)


# ---- round 2 ----------------------------------------------------------------------------------------------------

LENGTHS = ("short", "long")
R2_VARIANTS = (("random", "random"), ("lfr", "LFR (re-select each repetition)"), ("lfr-once", "LFR (select once)"))


def _final(r: dict) -> dict:
    return r["evals"][-1]


def _reach_ratio(r: dict, base: dict, key=lambda e: e["eval_loss"], offset: float = 0.0) -> float | None:
    """How many times fewer steps ``r`` needs than ``base`` to reach ``base``'s final value (``offset``: steps that
    ``r`` spent before its curve starts, e.g. a reference model); None if it never does."""
    s = first_reach([e["step"] for e in r["evals"]], [key(e) for e in r["evals"]], key(_final(base)))
    return None if s is None else base["evals"][-1]["step"] / (s + offset)


def _best(r: dict) -> float:
    return min(e["eval_loss"] for e in r["evals"])


def _best_reach_ratio(r: dict, base: dict) -> float | None:
    """How many times fewer steps ``r`` needs than ``base`` to reach ``base``'s lowest validation loss."""
    evals = base["evals"]
    target_step = next(e["step"] for e in evals if e["eval_loss"] == _best(base))
    s = first_reach([e["step"] for e in r["evals"]], [e["eval_loss"] for e in r["evals"]], _best(base))
    return None if s is None else target_step / s


def _ratios(xs: list[float | None]) -> str:
    return ", ".join("never" if x is None else f"{x:.2f}×" for x in xs)


def forgetting_section() -> str:
    title = "### LFR where forgetting happens: 448 blocks, ~9 and ~26 epochs"
    runs = {m: {v: load(f"r2/forgetting-{m}/{v}-seed*/result.json") for v, _ in R2_VARIANTS} for m in LENGTHS}
    if not any(runs[m]["random"] and runs[m]["lfr"] for m in runs):
        return f"{title}\n\nNot run yet (`python scripts/experiments/run_all.py --only r2-forgetting`).\n"
    any_run = next(r for m in runs for v in runs[m].values() for r in v)
    names, tps = any_run["domain_names"], any_run["tokens_per_step"]
    plans = []
    for m in LENGTHS:
        r = next((r for v in ("lfr", "lfr-once") for r in runs[m][v]), None)
        if r is not None:
            p = r["plan"]["params"]
            plans.append(f"**{m}**: learn {p['learn']} epochs, {p['cycles']} × (focus −50 %, review), focus −70 % "
                         f"{p['reps']} times = {r['epoch_equivalents']:.1f} epoch-equivalents, {r['steps']} steps "
                         f"({r['steps'] * tps / 1e6:.2f} M tokens)")
    out = [title, "",
           f"{any_run['n_blocks']} blocks of 128 tokens (64 per domain, spread over every source; "
           "`scripts/experiments/plans/lfr_forgetting.yaml`), GPT-2 2×128, the same LR schedule and init for every "
           "variant of a seed. Plans: " + "; ".join(plans) + ". Random = shuffled epochs for the same steps. LFR "
           "re-selects the hardest 30 % at each repetition of the last focus (the bundled plans' reading); LFR-once "
           "selects them once and trains that set for every repetition (`reselect: false`, the third-party "
           "implementation's reading). The one thing varied is the run length (epochs over the same blocks). "
           "Validation every 25 steps on 350 held-out blocks; n = seeds.", ""]
    rows, notes, fates_rows = [], [], []
    for m in LENGTHS:
        rnd = runs[m]["random"]
        if not rnd:
            continue
        by_seed = {r["seed"]: r for r in rnd}
        for v, label in R2_VARIANTS:
            rs = runs[m][v]
            if not rs:
                continue
            fin = [_final(r) for r in rs]
            train_last = [r["train_losses"][-1][1] for r in rs if r.get("train_losses")]
            row = [f"{m}: {label}", str(len(rs)), ms([e["eval_loss"] for e in fin]), ms([_best(r) for r in rs]),
                   ms(train_last), ms([e["eval_ppl_worst"] for e in fin], ".1f")]
            if v == "random":
                row += ["", "", ""]
            else:
                pairs = [(r, by_seed[r["seed"]]) for r in rs if r["seed"] in by_seed]
                d = [_final(a)["eval_loss"] - _final(b)["eval_loss"] for a, b in pairs]
                db = [_best(a) - _best(b) for a, b in pairs]
                row += [ms(d, "+.3f"), ms(db, "+.3f"), _ratios([_best_reach_ratio(a, b) for a, b in pairs])]
            rows.append(row)
            if v != "random" and all("fates" in r for r in rs):
                f = [r["fates"] for r in rs]
                fates_rows.append([f"{m}: {label}", ms([x["fractions"]["learned"] * 100 for x in f], ".1f"),
                                   ms([x["fractions"]["unlearned"] * 100 for x in f], ".1f"),
                                   ms([x["fractions"]["forgotten"] * 100 for x in f], ".1f"),
                                   ms([x["forgotten_multiple_share"] * 100 for x in f], ".1f")])
        once, again = runs[m]["lfr-once"], {r["seed"]: r for r in runs[m]["lfr"]}
        d = [_final(r)["eval_loss"] - _final(again[r["seed"]])["eval_loss"] for r in once if r["seed"] in again]
        if d:
            notes.append(f"{m}: LFR-once − LFR (re-select), paired: {ms(d, '+.3f')} "
                         f"(per seed: {', '.join(f'{x:+.3f}' for x in d)})")
    out += ["Final and best (lowest over the run) validation loss, last logged training loss (its gap to the "
            "validation loss shows how much of the set is memorised; for LFR it is the loss on its last focus set, "
            "the hardest blocks), final worst-domain perplexity; paired by seed against random: the differences, "
            "and how many times fewer tokens the variant needs to reach random's best validation loss (where the "
            "models overfit, validation loss falls and then rises, so random's *final* loss is reached on the way "
            "down and says little):", "",
            table(["run: variant", "n", "val loss", "best val loss", "train loss", "worst ppl", "Δ final vs random",
                   "Δ best vs random", "speed-up to random's best (per seed)"], rows), ""]
    if notes:
        out += ["The two readings of the repeated focus: " + "; ".join(notes) + ".", ""]
    if fates_rows:
        out += ["Block fates from the perplexities recorded in the training forward passes (% of blocks; the LFR "
                "paper: 25 % forgotten at least once, 82 % of those more than once):", "",
                table(["run: variant", "learned %", "unlearned %", "forgotten %", "forgotten > 1× (% of forgotten)"],
                      fates_rows), ""]
    per_domain = []
    for m in LENGTHS:
        for v, label in R2_VARIANTS:
            rs = runs[m][v]
            if rs:
                per_domain.append([f"{m}: {label}"] + [ms([domain_loss(_final(r), d) for r in rs]) for d in names])
    out += ["Final validation loss per domain:", "", table(["run: variant", *names], per_domain), ""]

    def draw(fig):
        axes = fig.subplots(1, 2)
        for ax, m in zip(axes, LENGTHS):
            for (v, label), c in zip(R2_VARIANTS, ("C0", "C3", "C2")):
                rs = runs[m][v]
                if rs:
                    band(ax, [([e["step"] * tps / 1e6 for e in r["evals"]], [e["eval_loss"] for e in r["evals"]])
                              for r in rs], label, c)
            ax.set_title(f"{m} run: validation loss")
            ax.set_xlabel("training tokens (M)")
            ax.set_ylabel("validation loss")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)

    fig = figure(FIG / "exp_r2_forgetting.png", draw, (11, 4))
    all_runs = [r for m in runs for v in runs[m].values() for r in v]
    out += [f"![LFR where forgetting happens]({fig})", "", commands(all_runs), ""]
    return "\n".join(out)


R2_MAINS = (("uniform_B", "uniform, B main steps"), ("doremi_3run", "DoReMi, 3 runs (reference B + proxy B + main B)"),
            ("uniform_3B", "uniform, 3B main steps"), ("doremi_1run", "DoReMi, one run (reference B + main 2B)"))
R2_COMPOSE = (("doremi_mixture", "DoReMi mixture"), ("lfr", "LFR"), ("lfr_over_doremi", "LFR over the DoReMi mixture"))


def doremi_r2_section() -> str:
    title = "### DoReMi in one run vs three runs vs uniform at equal compute; LFR over DoReMi weights"
    rs = load("r2/doremi/seed*/result.json")
    if not rs:
        return f"{title}\n\nNot run yet (`python scripts/experiments/run_all.py --only r2-doremi`).\n"
    names, B, tps = rs[0]["domain_names"], rs[0]["budget"], rs[0]["tokens_per_step"]
    out = [title, "",
           f"{len(rs)} seeds; the seven English domains ({rs[0]['packed'].rsplit('/', 1)[-1]}: 2,000 blocks per "
           f"domain), GPT-2 2×128. B = {B} steps of {tps:,} tokens. Compute is counted in steps of the same model: "
           "the 3-run pipeline spends B on the reference, B on the proxy and B on the main model; the one-run "
           "method spends the same reference's B and 2B on one main run whose own excess loss drives its sampling "
           f"(smoothing {rs[0]['smoothing_online']}); uniform spends all 3B on the main model. Average = mean over "
           "domains of the log perplexity; worst = the worst domain's perplexity. Validation every 50 steps.", ""]
    rows = []
    base = {r["seed"]: r["mains"]["uniform_3B"] for r in rs}
    spent_before = {"doremi_3run": 2 * B, "doremi_1run": B}  # steps before the main run: reference (and proxy)
    for key, label in R2_MAINS:
        fin = [_final(r["mains"][key]) for r in rs]
        avg = [avg_loss(e, names) for e in fin]
        d_avg = [avg_loss(_final(r["mains"][key]), names) - avg_loss(_final(base[r["seed"]]), names) for r in rs]
        d_worst = [_final(r["mains"][key])["eval_ppl_worst"] - _final(base[r["seed"]])["eval_ppl_worst"] for r in rs]
        offset = spent_before.get(key, 0)
        reach = [_reach_ratio(r["mains"][key], base[r["seed"]], lambda e: avg_loss(e, names), offset) for r in rs]
        reach_b = [_reach_ratio(r["mains"][key], r["mains"]["uniform_B"], lambda e: avg_loss(e, names)) for r in rs]
        rows.append([label, ms([e["eval_loss"] for e in fin]), ms(avg), ms([e["eval_ppl_worst"] for e in fin], ".1f"),
                     "" if key == "uniform_3B" else ms(d_avg, "+.3f"),
                     "" if key == "uniform_3B" else ms(d_worst, "+.1f"),
                     "" if key == "uniform_3B" else _ratios(reach),
                     "" if key == "uniform_B" else _ratios(reach_b)])
    out += ["Final validation loss; paired by seed against uniform at 3B (equal total compute): differences, and "
            "how many times less total compute (steps, counting the reference and proxy) reaches uniform-3B's final "
            "average loss; last column: how many times fewer main-model steps reach uniform-B's final average loss "
            "(the paper's speed-up, which leaves the reference and proxy out):", "",
            table(["main model", "val loss", "average log-ppl", "worst ppl", "Δ average vs uniform 3B",
                   "Δ worst ppl vs uniform 3B", "compute ratio to uniform 3B's final average (per seed)",
                   "main-step ratio to uniform B's final average (per seed)"], rows), ""]
    w3 = np.array([r["weights"] for r in rs])
    w1 = np.array([r["mains"]["doremi_1run"]["weights_average"] for r in rs])
    out += ["Weights found (mean over seeds; the 3-run pipeline's averaged proxy weights, the one-run method's "
            "running average):", "",
            table(["", *names], [["3 runs", *[f"{x:.3f}" for x in w3.mean(0)]],
                                 ["one run", *[f"{x:.3f}" for x in w1.mean(0)]]]), ""]
    crs = [r for r in rs if r.get("compose")]
    if crs:
        c0 = crs[0]["compose"]
        out += [f"**Composition.** On {crs[0]['compose_packed'].rsplit('/', 1)[-1]} (512 blocks per domain, spread "
                f"over every source), each seed's 3-run DoReMi weights; every variant trains {c0['lfr']['steps']} "
                "steps (the LFR plan's) from the same init:", ""]
        rows = []
        for key, label in R2_COMPOSE:
            fin = [_final(r["compose"][key]) for r in crs]
            rows.append([label, ms([e["eval_loss"] for e in fin]), ms([avg_loss(e, names) for e in fin]),
                         ms([e["eval_ppl_worst"] for e in fin], ".1f")])
        out += [table(["variant", "val loss", "average log-ppl", "worst ppl"], rows), ""]
        for other in ("lfr", "doremi_mixture"):
            d = [_final(r["compose"]["lfr_over_doremi"])["eval_loss"] - _final(r["compose"][other])["eval_loss"]
                 for r in crs]
            out.append(f"LFR over DoReMi − {dict(R2_COMPOSE)[other]}, paired: {ms(d, '+.3f')} "
                       f"(per seed: {', '.join(f'{x:+.3f}' for x in d)}).")
        out.append("")

    def draw(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for (key, label), c in zip(R2_MAINS, ("C7", "C1", "C0", "C3")):
            offset = spent_before.get(key, 0)
            band(ax1, [([(e["step"] + offset) for e in r["mains"][key]["evals"]],
                        [avg_loss(e, names) for e in r["mains"][key]["evals"]]) for r in rs], label, c)
        style(ax1, "total steps (reference and proxy included)", "average log-perplexity", "equal compute")
        for (key, label), c in zip(R2_COMPOSE, ("C1", "C3", "C2")):
            if crs:
                band(ax2, [([e["step"] for e in r["compose"][key]["evals"]],
                            [e["eval_loss"] for e in r["compose"][key]["evals"]]) for r in crs], label, c)
        style(ax2, "steps", "validation loss", "composition")

    fig = figure(FIG / "exp_r2_doremi.png", draw, (11, 4))
    out += [f"![DoReMi round 2]({fig})", "", commands(rs), ""]
    return "\n".join(out)


def doremi_sources_section() -> str:
    title = "### DoReMi on many domains: the 20 English sources as domains"
    rs = load("r2/doremi-sources/seed*/result.json")
    if not rs:
        return f"{title}\n\nNot run yet (`python scripts/experiments/run_all.py --only r2-doremi-sources`).\n"
    names, B = rs[0]["domain_names"], rs[0]["budget"]
    out = [title, "",
           f"{len(rs)} seeds; the English corpus re-cut with each of its {len(names)} sources as a domain "
           "(`curricula corpus build --files … --domain-column source`), 500 blocks per source spread over it "
           f"(smaller sources have fewer), GPT-2 2×128, η = {rs[0]['eta']}. One DoReMi round: reference on uniform "
           f"weights ({B} steps), proxy ({B} steps), then the main model on the averaged weights vs on uniform "
           f"weights, {B} steps each from the same init (the paper's comparison at equal main-model steps). "
           "Validation: 350 blocks, an equal share per source.", ""]
    rows, wins = [], []
    for key, label in (("uniform_B", "uniform"), ("doremi_3run", "DoReMi")):
        fin = [_final(r["mains"][key]) for r in rs]
        rows.append([label, ms([avg_loss(e, names) for e in fin]), ms([e["eval_ppl_worst"] for e in fin], ".1f")])
    d_avg = [avg_loss(_final(r["mains"]["doremi_3run"]), names) - avg_loss(_final(r["mains"]["uniform_B"]), names)
             for r in rs]
    d_worst = [_final(r["mains"]["doremi_3run"])["eval_ppl_worst"] - _final(r["mains"]["uniform_B"])["eval_ppl_worst"]
               for r in rs]
    for r in rs:
        a, b = _final(r["mains"]["doremi_3run"]), _final(r["mains"]["uniform_B"])
        wins.append(sum(domain_loss(a, d) < domain_loss(b, d) for d in names))
    out += [table(["main model", "average log-ppl", "worst ppl"], rows), "",
            f"DoReMi − uniform, paired by seed: average {ms(d_avg, '+.3f')} (per seed: "
            f"{', '.join(f'{x:+.3f}' for x in d_avg)}); worst-case perplexity {ms(d_worst, '+.1f')}; DoReMi is better "
            f"on {', '.join(str(w) for w in wins)} of {len(names)} sources.", ""]
    w = np.array([r["weights"] for r in rs])
    order = np.argsort(-w.mean(0))
    out += ["Weights (mean over seeds, uniform = " + f"{1 / len(names):.3f}), highest first: "
            + ", ".join(f"{names[i]} {w.mean(0)[i]:.3f}" for i in order) + ".", "", commands(rs), ""]
    return "\n".join(out)


def doremi_sweep_section() -> str:
    """DoReMi's settings on the 20 sources, each paired by seed with its own uniform main model."""
    title = "### DoReMi's settings on the 20 sources: step size η and proxy length"
    base = {r["seed"]: r for r in load("r2/doremi-sources/seed*/result.json")}
    sweeps = {tag: load(f"r2/doremi-sweep-{tag}/seed*/result.json") for tag in DOREMI_SWEEP}
    if not any(sweeps.values()):
        return f"{title}\n\nNot run yet (`python scripts/experiments/run_all.py --only r2-doremi-sweep`).\n"
    seeds = sorted({r["seed"] for rs in sweeps.values() for r in rs})
    def setting(r: dict) -> str:
        return f"η = {r['eta']:g}, proxy {r.get('proxy_steps', r['budget'])} steps"

    first = [base[s] for s in seeds if s in base]
    settings = [(setting(first[0]) + " (the runs above)", first)] if first else []
    settings += [(setting(rs[0]), rs) for rs in sweeps.values() if rs]
    names = settings[0][1][0]["domain_names"]
    rows, same_uniform = [], []
    for label, rs in settings:
        d_avg, d_worst, wins, top, ent = [], [], [], [], []
        for r in rs:
            a, b = _final(r["mains"]["doremi_3run"]), _final(r["mains"]["uniform_B"])
            d_avg.append(avg_loss(a, names) - avg_loss(b, names))
            d_worst.append(a["eval_ppl_worst"] - b["eval_ppl_worst"])
            wins.append(sum(domain_loss(a, d) < domain_loss(b, d) for d in names))
            w = np.array(r["weights"])
            top.append(float(w.max()))
            ent.append(float(np.exp(-(w * np.log(w)).sum())))  # the effective number of domains
            if r["seed"] in base:
                same_uniform.append(abs(b["eval_loss"] - _final(base[r["seed"]]["mains"]["uniform_B"])["eval_loss"]))
        rows.append([label, ", ".join(str(r["seed"]) for r in rs), ms(d_avg, "+.3f"),
                     ", ".join(f"{x:+.3f}" for x in d_avg), ms(d_worst, "+.1f"), ", ".join(str(w) for w in wins),
                     ms(top), ms(ent, ".1f")])
    all_rs = [r for rs in sweeps.values() for r in rs]
    return "\n".join([
        title, "",
        f"The same one-round pipeline and data as above (reference and main models {all_rs[0]['budget']} steps), "
        "with one setting changed; each setting's DoReMi main model is paired by seed with a uniform main model "
        f"from the same init (seeds {', '.join(map(str, seeds))}). "
        + (f"The uniform main models do not depend on the setting: their final validation losses equal those of "
           f"the η = 1 runs to within {max(same_uniform):.1e}. " if same_uniform else "")
        + "Effective domains = exp(entropy) of the weights (20 = uniform).", "",
        table(["setting", "seeds", "Δ average log-ppl vs uniform", "per seed", "Δ worst ppl vs uniform",
               "sources better (of 20)", "largest weight", "effective domains"], rows), "",
        commands(all_rs), ""])


def _by_replay(rs: list[dict]) -> dict[float, list[tuple[int, dict]]]:
    """The last-stage variants of one schedule's runs, grouped by replay share: {replay: [(seed, variant)]}."""
    out: dict[float, list] = {}
    for r in rs:
        for v in r["last_stage_variants"]:
            out.setdefault(float(v["replay"]), []).append((r["seed"], v))
    return dict(sorted(out.items()))


def smollm2_section() -> str:
    title = "### Continual pretraining of a pretrained model: SmolLM2-135M on German"
    rew, inf = (load(f"r2/continual-smollm2/{v}-seed*/result.json") for v in ("rewarm", "infinite"))
    if not rew:
        return f"{title}\n\nNot run yet (`python scripts/experiments/run_all.py --only r2-smollm2`).\n"
    r0 = rew[0]
    steps, tps = r0["steps"], r0["tokens_per_step"]
    out = [title, "",
           f"{r0['model']}, 134.5 M parameters, continued on "
           f"German (libreoffice help, man pages, fortunes; 4,000 blocks of 128 SmolLM2 tokens) for {steps} steps "
           f"of {tps:,} tokens ({steps * tps:,} tokens). The English corpus (600 blocks per domain, spread over "
           "every source) stands in for the model's own pretraining data: it is the replay pool (`steps: 0`: "
           "replayed, never trained on before) and its validation set measures forgetting. Re-warm: 10 % linear "
           f"warmup to {r0['max_lr']:.0e}, cosine to {r0['min_lr']:.0e}. "
           + (f"Infinite: no re-warm, one step up to a constant {inf[0]['infinite']['constant_lr']:.1e}, exponential "
              f"anneal to {r0['min_lr']:.0e} over the last {inf[0]['infinite']['anneal_steps']} steps. " if inf else "")
           + "Validation: 70 English blocks (10 per domain) and 70 German blocks; \"before\" is the "
           "pretrained model itself. The seed sets the data order and the replayed blocks.", ""]
    domains = sorted({k for r in rew + inf for v in r["last_stage_variants"]
                      for k in v.get("per_domain", {}).get("before", {})}, key=lambda k: (k.startswith("de"), k))
    rows, paired, domain_rows, points = [], [], [], []  # points: (label, marker, color, German after, forgetting)
    for rs, label, marker in ((rew, "re-warm", "o"), (inf, "infinite", "s")):
        by_replay = _by_replay(rs)
        zero = dict(by_replay.get(0.0, []))
        for vi, (x, runs) in enumerate(by_replay.items()):
            name = f"{label}, replay {100 * x:.0f} %"
            var = [v for _, v in runs]
            en0, en1 = [v["before"]["eval_en_loss"] for v in var], [v["after"]["eval_en_loss"] for v in var]
            de0, de1 = [v["before"]["eval_de_loss"] for v in var], [v["after"]["eval_de_loss"] for v in var]
            forget = [b - a for a, b in zip(en0, en1)]
            adapt = [a - b for a, b in zip(de0, de1)]
            rows.append([name, ", ".join(str(seed) for seed, _ in runs), ms(en0), ms(en1),
                         ms(forget, "+.3f"), ms([100 * f / a for f, a in zip(forget, en0)], "+.1f"), ms(de0), ms(de1),
                         ms(adapt, ".3f"), ms([100 * d / a for d, a in zip(adapt, de0)], ".1f")])
            points.append((f"{name} (n={len(var)})", marker, f"C{vi}", de1, forget))
            pd = [v["per_domain"] for v in var if v.get("per_domain")]
            domain_rows.append([name] + [ms([100 * (d["after"][k] / d["before"][k] - 1) for d in pd], "+.1f")
                                         for k in domains])
            pairs = [(v, zero[seed]) for seed, v in runs if seed in zero]
            if x == 0.0 or not pairs:
                continue
            # paired with the same schedule's replay 0 %, seed by seed
            en = [v["after"]["eval_en_loss"] - z["after"]["eval_en_loss"] for v, z in pairs]
            left = [(v["after"]["eval_en_loss"] - v["before"]["eval_en_loss"])
                    / (z["after"]["eval_en_loss"] - z["before"]["eval_en_loss"]) for v, z in pairs]
            cost = [v["after"]["eval_de_loss"] - z["after"]["eval_de_loss"] for v, z in pairs]
            cost_pct = [100 * c / z["after"]["eval_de_loss"] for c, (_, z) in zip(cost, pairs)]
            forgot = all(z["after"]["eval_en_loss"] > z["before"]["eval_en_loss"] for _, z in pairs)
            left_text = (f", forgetting left {', '.join(f'{r:+.2f}' for r in left)} × per seed (below 0: English "
                         "ends better than the pretrained model)") if forgot else \
                " (without replay English did not get worse, so there is no forgetting to divide)"
            paired.append(f"{name} vs 0 %: English {ms(en, '+.3f')} nats{left_text}, "
                          f"German {ms(cost, '+.3f')} nats ({ms(cost_pct, '+.2f')} %)")
    out += ["Validation loss before (the pretrained model) and after the German stage; forgetting = the English "
            "loss's rise, adaptation = the German loss's fall (nats, and % of the loss before):", "",
            table(["run", "seeds", "en before", "en after", "forgetting", "forgetting %", "de before", "de after",
                   "adaptation", "adaptation %"], rows), "",
            "Paired by seed, against the same schedule without replay (the goal: forgetting left ≤ 0.5 × at a "
            "German cost ≤ 1 %): " + "; ".join(paired) + ".", ""]
    if domains:
        out += ["Per domain: the perplexity's change over the German stage, % (negative: better than the pretrained "
                "model):", "", table(["run", *[k.split("/")[-1] for k in domains]], domain_rows), ""]

    def draw(fig):
        ax = fig.subplots()
        for name, marker, color, de, en in points:
            ax.errorbar(np.mean(de), np.mean(en), xerr=np.std(de) if len(de) > 1 else None,
                        yerr=np.std(en) if len(en) > 1 else None, marker=marker, color=color, capsize=3,
                        ls="none", label=name)
        style(ax, "German validation loss after (lower: more adaptation)", "English validation loss rise (forgetting)",
              "SmolLM2-135M continued on German: forgetting vs adaptation")

    fig = figure(FIG / "exp_r2_smollm2.png", draw, (7, 4.5))
    out += [f"![SmolLM2 continual]({fig})", "", "(Means over seeds; bars: the spread over seeds.)", "",
            commands(rew + inf), ""]
    return "\n".join(out)


def amplification_section() -> str:
    """Why iterated DoReMi amplifies instead of converging, from round 1's two-round runs (no new training)."""
    title = "### Why DoReMi's round 2 amplifies round 1 (from round 1's runs)"
    rs = load("doremi/seed*/result.json")
    rs = [r for r in rs if len(r["rounds"]) >= 2]
    if not rs:
        return f"{title}\n\nNeeds round 1's DoReMi runs (`python scripts/experiments/run_all.py --only doremi`).\n"
    names = rs[0]["domain_names"]
    rows, corr = [], {"ref": [], "rounds": [], "ref_next": []}
    for r in rs:
        a, b = r["rounds"][0], r["rounds"][1]
        w0, w1, w2 = (np.array(x) for x in (a["reference_weights"], a["weights"], b["weights"]))
        ref = np.array([np.log(b["reference_eval"][f"eval_ppl/{d}"]) - np.log(a["reference_eval"][f"eval_ppl/{d}"])
                        for d in names])
        g1, g2 = np.log(w1 / w0), np.log(w2 / w1)
        corr["ref"].append(float(np.corrcoef(g1, ref)[0, 1]))
        corr["rounds"].append(float(np.corrcoef(g1, g2)[0, 1]))
        corr["ref_next"].append(float(np.corrcoef(ref, g2)[0, 1]))
        rows.append([f"seed {r['seed']}"] + [f"{x:.2f} / {y:+.2f} / {z:.2f}" for x, y, z in
                                             zip(w1 / w0, ref, w2 / w1)])
    fmt = lambda xs: ", ".join(f"{x:+.2f}" for x in xs)  # noqa: E731
    return "\n".join([
        title, "",
        "In this pipeline round 2 differs from round 1 in one input only: its reference is trained on round 1's "
        "weights instead of uniform ones (the proxy samples uniformly and starts from uniform weights in both "
        "rounds; only its init seed differs). So whatever round 2 adds comes through the reference. Per domain and "
        "seed: round 1's weight ratio w1/w0, the change of the reference's validation loss from round 1 to round 2 "
        "(nats), and round 2's weight ratio w2/w1:", "",
        table(["", *names], rows), "",
        f"Correlations over the domains, per seed: log(w1/w0) vs the reference's loss change {fmt(corr['ref'])}; "
        f"the reference's loss change vs log(w2/w1) {fmt(corr['ref_next'])}; log(w1/w0) vs log(w2/w1) "
        f"{fmt(corr['rounds'])}. A domain that round 1 down-weights gets a round-2 reference trained on less of it "
        "(its reference loss rises, most for prose and science); against a weaker reference the proxy's clipped "
        "excess loss on that domain shrinks, so round 2 down-weights it again, and the other way round for the "
        "up-weighted domains. The rounds are a positive feedback loop through the reference, not a fixed-point "
        "iteration: with a reference that learns each domain in proportion to its weight, they can only converge "
        "when the weights stop moving the reference. The step size η and the proxy's length are varied on the 20 "
        "sources (the previous section), in one round: they change how far the weights move, not the loop. Not "
        "varied: the normaliser of the proxy's loss (official DoReMi issues #9/#33). Here each token of domain d "
        "weighs α_d / p_d and the sum is divided by the batch's tokens, which equals the paper's per-domain mean "
        "Σ_d α_d · mean loss_d in expectation (a domain's expected token count is p_d times the batch's); the "
        "official code divides by Σ_d α_d n_d instead. The weight update itself uses the per-domain mean excess, "
        "as both do. The official code's two conventions are options (`initial_excess: log_vocab`, "
        "`average_includes_initial: true`), not run here.", ""])


def round2_part() -> str:
    return "\n".join(["## Evidence, round 2: each method where its premise holds", "",
                      "Produced by `python scripts/experiments/prepare.py && python scripts/experiments/run_all.py "
                      "--only r2` (then `python scripts/experiments/collect.py`); the same hardware, tokenizer, "
                      "batch and optimizer as round 1. " + r2_hardware_line(), "",
                      forgetting_section(), doremi_r2_section(), doremi_sources_section(),
                      doremi_sweep_section(), amplification_section(), smollm2_section()])


def r2_hardware_line() -> str:
    rs = load("r2/*/*/result.json")
    if not rs:
        return ""
    smol = load("r2/continual-smollm2/*/result.json")
    smol_threads = sorted({r["hardware"]["threads_per_run"] for r in smol})
    smol_text = (f" (the SmolLM2 runs: {', '.join(map(str, smol_threads))} threads, one run at a time)"
                 if smol else "")
    return (f"One thread per run{smol_text}, 2 to 5 runs at a time on the 2 cores (so wall times in the results are "
            f"not comparable across runs); HEAD when the runs finished: {', '.join(sorted({r['commit'] for r in rs}))} "
            "(later commits added options and experiments and run the earlier ones unchanged, or changed the "
            "collector, tests and docs).")


def hardware_line() -> str:
    rs = load("*/*/result.json") + (load("lfr-spread/*/result.json") if SOURCE == RUNS else [])
    if not rs:
        return ""
    h = rs[0]["hardware"]
    commits = sorted({r["commit"] for r in rs})
    return (f"Hardware: {h['cpu']} ({h['cores']} cores), one thread per run, two runs at a time; torch "
            f"{h['torch']}, Python {h['python']}; HEAD when each run finished: {', '.join(commits)} (the experiment code is the "
            "same in all; they differ in tests, docs and one argument-parsing fix that the infinite-schedule runs "
            "needed).")


def main() -> None:
    global SOURCE
    save_raw()  # this machine's runs (if any) join the committed copies ...
    SOURCE = RAW  # ... and the page is built from those copies, so it rebuilds the same on a fresh clone
    block = f"{BEGIN}\n{page_part()}\n{END}"
    text = DOC.read_text() if DOC.is_file() else "# Results\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"updated {DOC}")


def page_part() -> str:
    """The generated part of docs/results.md (between the markers)."""
    return "\n".join([
        "## Evidence: the three methods vs their baselines (3 seeds)", "",
        "Produced by `python scripts/experiments/prepare.py && python scripts/experiments/run_all.py` (which ends "
        "with `python scripts/experiments/collect.py`); each run's `runs/experiments/**/result.json` holds its exact "
        "command. " + hardware_line(), "",
        "All runs: GPT-2, 2 layers, width 128, 4 heads (1.5 M parameters), 8,192-token byte-level BPE trained on the "
        "corpus, 128-token blocks, batch 16, AdamW (weight decay 0.1), peak LR 2e-3, 5 % warmup + cosine unless "
        "stated. These are tiny models and budgets (0.8–1.4 M tokens per run) chosen so that every run takes a few "
        "minutes on 2 CPU cores; see the conclusions below for what that means.", "",
        "**Data caveat.** The packings cap each domain at its *first* N blocks (`curricula pack --max-blocks-per-domain "
        "N`, `--cap first`, the only mode when these runs were made), which on this corpus is one source per domain "
        "(prose = Shakespeare, conversational = chitchat, reference = GCIDE, science = SciPy docs, technical = Python "
        "docs), while validation samples every source. Absolute per-domain losses include that shift (likely part of why "
        "science is the worst domain everywhere); the methods are compared on identical data. `--cap spread` now "
        "keeps N blocks spread over every source.", "",
        lfr_section(), doremi_section(), continual_section(),
        lfr_section("lfr-spread", "Check: LFR vs random on blocks from every source (`--cap spread`)",
                    "exp_lfr_vs_random_spread.png", "512 per domain, evenly spaced over all of it"),
        round2_part()])


if __name__ == "__main__":
    main()
