"""``curricula analyze RUN_DIR``: what happened to every block of a curriculum run (``curricula.analysis`` re-exports
this module).

Reads the curriculum log a ``CurriculumTrainer`` run wrote (``RUN_DIR/curriculum/``: ``epoch-*.parquet``, ``plan.json``,
``focus_reports.jsonl``, ``table.arrow``), classifies every block with ``curricula.methods.lfr.fates`` (learned /
unlearned / forgotten; "multiple descent" = forgotten two or more times), and writes into ``RUN_DIR/analysis/``:

    fates.parquet                    one row per block: the ``block_fates`` columns plus domain, min_ppl, nonfinite_visits
    summary.json                     everything ``analyze_run`` returns (NaN written as null)
    report.md                        ``format_report``: fractions overall and per domain next to the LFR paper's
                                     25 % / 82 %, focus decisions, the most-forgotten and hardest blocks with their text
    ppl_histogram_per_phase.png      block perplexity distribution of every plan epoch (log x)
    domain_ppl_over_training.png     mean block perplexity per domain over optimizer steps (log y)
    focus_domain_share.png           share of each domain's blocks kept at each focus decision (only if there was one)

Block text is decoded when ``RUN_DIR/_data.json`` (``{"packed": PATH, "split": "train"}``; ``data.json`` in runs before
0.1) points to the packed data. The leading ``_`` keeps this local path out of ``Trainer.push_to_hub`` uploads.
Losses that are NaN/inf are left out of the plots and the fate trajectories, and counted in the report.

Pure: numpy, pyarrow and matplotlib (Agg canvas, no pyplot) only; ``datasets`` and the tokenizer are imported only
to decode block text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from curricula.methods.lfr.fates import FATES, block_fates, summarize_fates
from curricula.logs import LOG_DIR, read_curriculum_log
from curricula.errors import ConfigError, CorruptFileError
from curricula.report.plots import domain_colors, figure, save_figure
from curricula.run_layout import read_json, write_json, write_parquet, write_text

__all__ = ["analyze_run", "format_report", "PAPER_FORGOTTEN", "PAPER_MULTIPLE_SHARE", "ANALYSIS_DIR", "PLOTS"]

# Prakriya et al., arXiv 2409.06131: share of blocks forgotten at least once, and share of those forgotten >= 2 times
PAPER_FORGOTTEN = 0.25
PAPER_MULTIPLE_SHARE = 0.82
ANALYSIS_DIR = "analysis"
TEXT_CHARS = 300
MAX_STEP_BINS = 120
KIND_COLORS = {"learn": "tab:blue", "focus": "tab:orange", "review": "tab:green"}
PLOTS = ("ppl_histogram_per_phase", "domain_ppl_over_training", "focus_domain_share")


# ---- reading the run ------------------------------------------------------------------------------------------------


def _dirs(run_dir: Path) -> tuple[Path, Path]:
    """(RUN_DIR, RUN_DIR/curriculum); ``run_dir`` may be either."""
    run_dir = Path(run_dir)
    if (run_dir / LOG_DIR).is_dir():
        return run_dir, run_dir / LOG_DIR
    if run_dir.name == LOG_DIR and _data_json(run_dir) is None:
        return run_dir.parent, run_dir
    return run_dir, run_dir


def _data_json(run_dir: Path) -> Path | None:
    """Where the run recorded its packed data (``_data.json``; older runs: ``data.json``)."""
    return next((p for p in (run_dir / "_data.json", run_dir / "data.json") if p.is_file()), None)


def _read_json(path: Path):
    return read_json(path, "run record") if path.is_file() else None


def _focus_reports(log_dir: Path, notes: list[str]) -> list[dict]:
    path = log_dir / "focus_reports.jsonl"
    if not path.is_file():
        return []
    by_epoch: dict[int, dict] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            by_epoch[int(rec["epoch"])] = rec  # a resumed run may append a decision again: the last one counts
        except (ValueError, KeyError, TypeError):
            notes.append(f"focus_reports.jsonl line {lineno} is not a focus report; skipped")
    return [by_epoch[e] for e in sorted(by_epoch)]


def _domain_totals(log_dir: Path, bid: np.ndarray, dom: np.ndarray) -> tuple[dict[int, int], str]:
    """Blocks per domain: from table.arrow (every block of the run), else from the blocks the log saw."""
    path = log_dir / "table.arrow"
    if path.is_file():
        try:
            with pa.memory_map(str(path), "r") as source:
                d = pa.ipc.open_file(source).read_all().column("domain_id").to_numpy()
            counts = np.bincount(d) if d.size else np.zeros(0, np.int64)
            return {int(i): int(c) for i, c in enumerate(counts) if c}, "table.arrow"
        except (OSError, pa.ArrowException, KeyError):
            pass
    if bid.size == 0:
        return {}, "log"
    order = np.lexsort((dom, bid))
    first = np.r_[True, bid[order][1:] != bid[order][:-1]]
    d = dom[order][first]
    return {int(i): int(np.count_nonzero(d == i)) for i in np.unique(d)}, "log"


# ---- block text ------------------------------------------------------------------------------------------------------


def _load_texts(run_dir: Path, block_ids: list[int]) -> tuple[dict[int, str], str | None]:
    """Decoded text of ``block_ids`` (first TEXT_CHARS characters), or ({}, why not)."""
    if not block_ids:
        return {}, None
    where = _data_json(run_dir)
    try:
        info = _read_json(where) if where is not None else None
    except CorruptFileError as err:
        return {}, f"text unavailable: {err}"
    if not isinstance(info, dict):
        return {}, "text unavailable: no _data.json"
    if "packed" not in info:
        return _texts_from_blocks(run_dir, info, block_ids)
    try:
        from curricula.data.pack import load_blocks, read_meta
        from curricula.data.tokenizers import load_tokenizer

        packed = Path(info["packed"]).expanduser()
        if not packed.is_absolute() and not packed.exists() and (run_dir / packed).exists():
            packed = run_dir / packed
        split = info.get("split", "train")
        meta = read_meta(packed)
        spec = meta.get("tokenizer_spec") or meta["tokenizer"]["name"]
        try:
            tok = load_tokenizer(spec)
        except Exception as err:  # noqa: BLE001 - any failure only costs the excerpts
            return {}, f"text unavailable: cannot load tokenizer {spec!r} ({err})"
        want = meta["tokenizer"].get("vocab_sha256")
        if want and tok.identity.vocab_sha256 != want:
            return {}, f"text unavailable: tokenizer {spec!r} does not have the vocabulary {packed} was packed with"
        ds = load_blocks(packed, split)
        ids = np.asarray(block_ids, dtype=np.int64)
        rows = ids
        if ids.max() >= len(ds) or ids.min() < 0 or not np.array_equal(np.asarray(ds.select(ids)["block_id"]), ids):
            all_ids = np.asarray(ds["block_id"], dtype=np.int64)  # block_id is not the row number: look them up
            if all_ids.size == 0:
                return {}, f"text unavailable: {packed} ({split}) holds no blocks"
            sorter = np.argsort(all_ids, kind="stable")
            rows = sorter[np.searchsorted(all_ids, ids, sorter=sorter).clip(0, all_ids.size - 1)]
            missing = ids[all_ids[rows] != ids]
            if missing.size:
                return {}, f"text unavailable: block(s) {missing.tolist()} are not in {packed} ({split})"
        sub = ds.select(rows)
        texts = {int(b): tok.decode(np.asarray(x).tolist()) for b, x in zip(ids, sub["input_ids"])}
        return {b: (t[:TEXT_CHARS] + "…" if len(t) > TEXT_CHARS else t) for b, t in texts.items()}, None
    except Exception as err:  # noqa: BLE001 - a broken data.json or packed folder must not stop the analysis
        return {}, f"text unavailable: {type(err).__name__}: {err}"


def _texts_from_blocks(run_dir: Path, info: dict, block_ids: list[int]) -> tuple[dict[int, str], str | None]:
    """Block text for a run whose data was not a ``curricula pack`` folder (``CurriculumTrainer`` on in-memory or
    cached ``datasets`` blocks): the tokens from ``_blocks.arrow`` or the data's Arrow files, decoded with the
    tokenizer saved next to the model."""
    try:
        from curricula.data.tokenizers import load_tokenizer

        spec = str(run_dir / info.get("tokenizer", ".")) if info.get("tokenizer", ".") == "." else info["tokenizer"]
        try:
            tok = load_tokenizer(spec)
        except Exception as err:  # noqa: BLE001 - any failure only costs the excerpts
            return {}, f"text unavailable: no tokenizer saved with the model in {run_dir} ({err})"
        want = (info.get("tokenizer_identity") or {}).get("vocab_sha256")
        if want and tok.identity.vocab_sha256 != want:
            return {}, f"text unavailable: the tokenizer in {spec} is not the one the blocks were made with"
        paths = [run_dir / info["blocks"]] if "blocks" in info else [Path(f) for f in info.get("arrow", [])]
        tables = []
        for path in paths:
            if "blocks" in info:
                with pa.memory_map(str(path), "r") as source:
                    tables.append(pa.ipc.open_file(source).read_all())
            else:
                with pa.memory_map(str(path), "r") as source:
                    tables.append(pa.ipc.open_stream(source).read_all())
        table = pa.concat_tables(tables)
        all_ids = table.column("block_id").to_numpy()
        sorter = np.argsort(all_ids, kind="stable")
        ids = np.asarray(block_ids, dtype=np.int64)
        rows = sorter[np.searchsorted(all_ids, ids, sorter=sorter).clip(0, all_ids.size - 1)]
        if np.any(all_ids[rows] != ids):
            return {}, f"text unavailable: block(s) {ids[all_ids[rows] != ids].tolist()} are not in the run's data"
        tokens = table.column("input_ids").take(pa.array(rows)).to_pylist()
        texts = {int(b): tok.decode(list(x)) for b, x in zip(ids, tokens)}
        return {b: (t[:TEXT_CHARS] + "…" if len(t) > TEXT_CHARS else t) for b, t in texts.items()}, None
    except Exception as err:  # noqa: BLE001 - a broken record must not stop the analysis
        return {}, f"text unavailable: {type(err).__name__}: {err}"


# ---- analysis --------------------------------------------------------------------------------------------------------


def _nan_to_none(x):
    """JSON-able copy: NaN/inf -> None, numpy scalars -> Python, Paths -> str, keys -> str."""
    if isinstance(x, dict):
        return {str(k): _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def _scope(summary: dict, visits: int, nonfinite: int, fate_codes: np.ndarray) -> dict:
    out = {k: v for k, v in summary.items() if k != "per_domain"}
    revisited = int(np.count_nonzero(fate_codes != FATES.index("unseen_or_once")))
    out["visits"] = int(visits)
    out["nonfinite_visits"] = int(nonfinite)
    out["revisited"] = revisited  # blocks with >= 2 finite visits: the ones a fate can be told for
    out["forgotten_of_revisited"] = out["counts"]["forgotten"] / revisited if revisited else float("nan")
    return out


def _fate_codes(fates: pa.Table) -> np.ndarray:
    f = fates.column("fate").combine_chunks()
    return f.indices.to_numpy().astype(np.int64) if isinstance(f, pa.DictionaryArray) else np.array(
        [FATES.index(x) for x in f.to_pylist()], dtype=np.int64
    )


def _trajectories(bid, epoch, kind_of_epoch, step, loss, wanted: np.ndarray) -> dict[int, list[dict]]:
    sel = np.flatnonzero(np.isin(bid, wanted))
    sel = sel[np.lexsort((step[sel], epoch[sel], bid[sel]))]
    out: dict[int, list[dict]] = {int(b): [] for b in wanted}
    with np.errstate(over="ignore"):
        for i in sel:
            out[int(bid[i])].append(
                {"epoch": int(epoch[i]), "phase": kind_of_epoch.get(int(epoch[i]), "?"), "step": int(step[i]),
                 "ppl": float(np.exp(np.float64(loss[i])))}
            )
    return out


def analyze_run(run_dir, out_dir=None, top_k: int = 5, rel_tol: float = 0.0) -> dict:
    """Classify every block of the run at ``run_dir`` and write fates, summary, report and plots (see the module
    docstring) into ``out_dir`` (default ``RUN_DIR/analysis``). Returns the summary as a dict (also summary.json);
    print it with ``format_report``."""
    if top_k < 0:
        raise ConfigError(f"top_k={top_k} must be >= 0")
    run_dir, log_dir = _dirs(Path(run_dir))
    out = Path(out_dir) if out_dir is not None else run_dir / ANALYSIS_DIR
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    log = read_curriculum_log(log_dir)
    info = _read_json(log_dir / "plan.json") or _read_json(log_dir / "run.json")
    if info is None:
        notes.append("plan.json missing: domain names and plan taken from the log alone")
        info = {}
    names = list(info.get("domain_names") or [])

    bid = log.column("block_id").to_numpy()
    dom = log.column("domain_id").to_numpy()
    epoch = log.column("epoch").to_numpy()
    step = log.column("step").to_numpy()
    loss = log.column("loss").to_numpy().astype(np.float64)
    finite = np.isfinite(loss)

    def name(d: int) -> str:
        return str(names[d]) if 0 <= d < len(names) and names[d] is not None else f"domain {d}"

    # plan epochs, as logged (kind from the log's phase column, drop percent from plan.json)
    plan_epochs = {int(e["index"]): e for e in info.get("epochs", []) if "index" in e}
    uniq, first_row = np.unique(epoch, return_index=True)
    phase_col, phase_index_col = log.column("phase"), log.column("phase_index")
    epochs = []
    for e, i in zip(uniq.tolist(), first_row.tolist()):
        m = epoch == e
        pe = plan_epochs.get(e, {})
        epochs.append(
            {"epoch": e, "kind": phase_col[i].as_py(), "phase_index": int(phase_index_col[i].as_py()),
             "drop_percent": pe.get("drop_percent"), "blocks": int(np.count_nonzero(m)),
             "nonfinite": int(np.count_nonzero(m & ~finite)),
             "first_step": int(step[m].min()), "last_step": int(step[m].max())}
        )
    kind_of_epoch = {e["epoch"]: e["kind"] for e in epochs}
    missing_epochs = sorted(set(plan_epochs) - set(kind_of_epoch))
    if missing_epochs:
        notes.append(f"plan epoch(s) {missing_epochs} have no log yet (run unfinished?)")

    # fates, with a few extra columns for reading them later
    fates = block_fates(log, rel_tol=rel_tol)
    fb = fates.column("block_id").to_numpy()
    fd = fates.column("domain_id").to_numpy()
    min_loss = np.full(fb.size, np.nan)
    if np.any(finite):
        fbid, floss = bid[finite], loss[finite]
        order = np.lexsort((floss, fbid))
        head = np.r_[True, fbid[order][1:] != fbid[order][:-1]]
        min_loss[np.searchsorted(fb, fbid[order][head])] = floss[order][head]
    with np.errstate(over="ignore"):
        min_ppl = np.exp(min_loss)
    nonfinite_visits = np.bincount(np.searchsorted(fb, bid[~finite]), minlength=fb.size).astype(np.int32)
    fates = fates.append_column("domain", pa.array([name(int(d)) for d in fd], pa.string()))
    fates = fates.append_column("min_ppl", pa.array(min_ppl))
    fates = fates.append_column("nonfinite_visits", pa.array(nonfinite_visits))
    write_parquet(out / "fates.parquet", fates)

    codes = _fate_codes(fates)
    times = fates.column("times_forgotten").to_numpy()
    last_ppl = fates.column("last_ppl").to_numpy()
    raw = summarize_fates(fates)
    summary = _scope(raw, bid.size, int(np.count_nonzero(~finite)), codes)
    empty = {k: v for k, v in summarize_fates(fates.slice(0, 0)).items() if k != "per_domain"}
    domain_ids = sorted(set(range(len(names))) | {int(d) for d in np.unique(fd)})
    per_domain = {}
    for d in domain_ids:
        in_d = fd == d
        rows_d = dom == d
        s = raw["per_domain"].get(d, empty)
        per_domain[name(d)] = {"domain_id": d, **_scope(s, int(np.count_nonzero(rows_d)),
                                                        int(np.count_nonzero(rows_d & ~finite)), codes[in_d])}
    summary["per_domain"] = per_domain

    # focus decisions: share of each domain's blocks kept
    totals, totals_from = _domain_totals(log_dir, bid, dom)
    focus = []
    for rec in _focus_reports(log_dir, notes):
        kept = {int(k): int(v) for k, v in (rec.get("kept_per_domain") or {}).items()}
        share = {name(d): (kept.get(d, 0) / totals[d] if totals.get(d) else float("nan")) for d in sorted(set(totals) | set(kept))}
        n_total = rec.get("n_total")
        focus.append(
            {"epoch": int(rec["epoch"]), "phase_index": rec.get("phase_index"), "drop_percent": rec.get("drop_percent"),
             "n_total": n_total, "n_dropped": rec.get("n_dropped"), "n_kept": rec.get("n_kept"),
             "n_nonfinite_kept": rec.get("n_nonfinite_kept"), "threshold_ppl": rec.get("threshold_ppl"),
             "kept_per_domain": {name(d): k for d, k in sorted(kept.items())}, "kept_share_per_domain": share,
             "kept_share": (rec["n_kept"] / n_total) if n_total and rec.get("n_kept") is not None else float("nan")}
        )
    if not focus:
        notes.append("no focus decision in this run (focus_reports.jsonl missing or empty): focus_domain_share.png not written")

    # excerpts: most forgotten (times, then rise of last over min perplexity), hardest (highest last perplexity)
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = last_ppl / min_ppl
    rise = np.where(np.isfinite(rise), rise, 0.0)
    forgotten = np.flatnonzero(times > 0)
    most = forgotten[np.lexsort((fb[forgotten], -rise[forgotten], -times[forgotten]))][:top_k]
    finite_last = np.flatnonzero(np.isfinite(last_ppl))
    hardest = finite_last[np.lexsort((fb[finite_last], -last_ppl[finite_last]))][:top_k]
    chosen = np.unique(np.r_[fb[most], fb[hardest]]).astype(np.int64)
    traj = _trajectories(bid, epoch, kind_of_epoch, step, loss, chosen)
    texts, text_note = _load_texts(run_dir, chosen.tolist())

    def excerpt(i: int) -> dict:
        b = int(fb[i])
        return {"block_id": b, "domain_id": int(fd[i]), "domain": name(int(fd[i])), "fate": FATES[codes[i]],
                "times_forgotten": int(times[i]), "first_ppl": float(fates.column("first_ppl")[i].as_py()),
                "last_ppl": float(last_ppl[i]), "min_ppl": float(min_ppl[i]), "trajectory": traj.get(b, []),
                "text": texts.get(b)}

    result = {
        "run_dir": str(run_dir),
        "out_dir": str(out),
        "rel_tol": rel_tol,
        "top_k": top_k,
        "plan": info.get("plan"),
        "n_blocks": info.get("n_blocks"),
        "total_steps": info.get("total_steps"),
        "domain_names": names,
        "domain_totals_from": totals_from,
        "epochs": epochs,
        "summary": summary,
        "paper": {"forgotten": PAPER_FORGOTTEN, "forgotten_multiple_share": PAPER_MULTIPLE_SHARE},
        "focus": focus,
        "excerpts": {"most_forgotten": [excerpt(i) for i in most], "hardest": [excerpt(i) for i in hardest]},
        "text_note": text_note,
        "plots": {},
        "notes": notes,
    }

    # plots (finite perplexities only)
    with np.errstate(over="ignore"):
        ppl = np.exp(loss)
    ok = np.isfinite(ppl) & (ppl > 0)
    plots = result["plots"]
    plots["ppl_histogram_per_phase"] = str(_plot_histograms(out / "ppl_histogram_per_phase.png", epochs, epoch, ppl, ok))
    plots["domain_ppl_over_training"] = str(
        _plot_domain_ppl(out / "domain_ppl_over_training.png", epochs, dom, step, ppl, ok, domain_ids, name)
    )
    stale = out / "focus_domain_share.png"
    if focus:
        plots["focus_domain_share"] = str(_plot_focus_share(stale, focus, totals, name))
    else:
        plots["focus_domain_share"] = None
        if stale.is_file():
            stale.unlink()  # from an earlier analysis of another run into the same folder

    result["files"] = {"fates": str(out / "fates.parquet"), "summary": str(out / "summary.json"),
                       "report": str(out / "report.md")}
    write_json(out / "summary.json", _nan_to_none(result), indent=2, allow_nan=False)
    write_text(out / "report.md", format_report(result))
    return result


# ---- plots -----------------------------------------------------------------------------------------------------------


def _epoch_label(e: dict) -> str:
    label = f"epoch {e['epoch']}: {e['kind']}"
    if e["kind"] == "focus" and e.get("drop_percent") is not None:
        label += f" (drop {e['drop_percent']:g}%)"
    return label


def _plot_histograms(path: Path, epochs: list[dict], epoch: np.ndarray, ppl: np.ndarray, ok: np.ndarray) -> Path:
    from matplotlib.ticker import MaxNLocator

    good = ppl[ok]
    if good.size:
        lo, hi = float(good.min()), float(good.max())
        if hi <= lo * 1.0001:
            lo, hi = lo / 1.5, hi * 1.5
        bins = np.geomspace(lo, hi, 41)
    else:
        bins = np.geomspace(1.0, 10.0, 41)
    n = len(epochs)
    overlay = n > 16
    if overlay:  # many epochs: one panel, a step histogram per epoch, coloured by phase kind
        fig = figure(10, 5.5)
        ax = fig.add_subplot()
        seen_kinds = set()
        for i, e in enumerate(epochs):
            v = ppl[(epoch == e["epoch"]) & ok]
            if not v.size:
                continue
            k = e["kind"]
            ax.hist(v, bins=bins, histtype="step", color=KIND_COLORS.get(k, "gray"), alpha=0.2 + 0.8 * i / (n - 1))
            seen_kinds.add(k)
        ax.set_xscale("log")
        ax.set_xlabel("block perplexity (log)")
        ax.set_ylabel("blocks")
        ax.set_title(f"Block perplexity per plan epoch ({n} epochs, one line each; later epochs darker)")
        if seen_kinds:
            from matplotlib.lines import Line2D

            kinds = [k for k in dict.fromkeys(e["kind"] for e in epochs) if k in seen_kinds]
            ax.legend([Line2D([], [], color=KIND_COLORS.get(k, "gray")) for k in kinds], kinds, title="phase")
    else:
        ncols = min(4, max(n, 1))
        nrows = max(1, math.ceil(n / ncols))
        fig = figure(3.6 * ncols, 2.7 * nrows + 0.6)
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
        for ax, e in zip(axes.flat, epochs):
            m = epoch == e["epoch"]
            v = ppl[m & ok]
            color = KIND_COLORS.get(e["kind"], "gray")
            if v.size:
                counts, _, _ = ax.hist(v, bins=bins, color=color, alpha=0.8)
                med = float(np.median(v))
                ax.axvline(med, color="black", lw=1, ls="--")
                ax.set_ylim(0, max(float(counts.max()), 1.0) * 1.35)  # headroom for the label
                ax.text(0.98, 0.97, f"n={v.size:,}  median {med:.3g}", transform=ax.transAxes, ha="right", va="top",
                        fontsize=8)
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            else:
                ax.text(0.5, 0.5, "no finite perplexity", transform=ax.transAxes, ha="center", va="center")
            bad = int(np.count_nonzero(m & ~ok))
            title = _epoch_label(e) + (f"\n{bad} non-finite left out" if bad else "")
            ax.set_title(title, fontsize=10, color=color if e["kind"] in KIND_COLORS else "black")
            ax.set_xscale("log")
        for i, ax in enumerate(axes.flat):
            if i >= n:
                ax.set_visible(False)
            elif i + ncols >= n:  # nothing visible below it: it carries the x axis
                ax.xaxis.set_tick_params(labelbottom=True)
                ax.set_xlabel("block perplexity (log)")
        for ax in axes[:, 0]:
            ax.set_ylabel("blocks")
        if n == 0:
            axes[0, 0].set_visible(True)
            axes[0, 0].text(0.5, 0.5, "empty log", ha="center", va="center", transform=axes[0, 0].transAxes)
        fig.suptitle("Block perplexity per plan epoch (dashed: median)")
    return save_figure(fig, path)


def _plot_domain_ppl(path: Path, epochs, dom, step, ppl, ok, domain_ids, name) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig = figure(11, 5.5)
    ax = fig.add_subplot()
    drawn = 0
    if np.any(ok):
        s = step[ok]
        smin, smax = int(s.min()), int(s.max())
        n_bins = max(1, min(MAX_STEP_BINS, len(np.unique(s))))
        edges = np.linspace(smin, smax + 1, n_bins + 1)
        idx = (np.searchsorted(edges, step, side="right") - 1).clip(0, n_bins - 1)
        centers = (edges[:-1] + edges[1:]) / 2 - 0.5
        colors = domain_colors(len(domain_ids))
        for c, d in zip(colors, domain_ids):
            m = ok & (dom == d)
            if not np.any(m):
                continue
            cnt = np.bincount(idx[m], minlength=n_bins)
            tot = np.bincount(idx[m], weights=ppl[m], minlength=n_bins)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
            has = cnt > 0
            ax.plot(centers[has], mean[has], marker="o", ms=3, lw=1.5, color=c, label=f"{name(d)} ({int(np.count_nonzero(m)):,} visits)")
            drawn += 1
        width = (smax + 1 - smin) / n_bins
        ax.set_xlabel(f"optimizer step (bins of {width:.3g} step{'s' if width != 1 else ''})")
    else:
        ax.set_xlabel("optimizer step")
    if drawn:
        ax.set_yscale("log")
        for e in epochs:
            ax.axvline(e["first_step"] - 0.5, color="gray", lw=0.8, ls=":")
            ax.text(e["first_step"] - 0.5, 0.99, f" {e['kind']} {e['epoch']}", va="top", ha="left", fontsize=8,
                    rotation=90, transform=ax.get_xaxis_transform(), color=KIND_COLORS.get(e["kind"], "gray"))
        ax.legend(title="domain", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no finite perplexity in the log", ha="center", va="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean perplexity of the blocks trained (log)")
    ax.set_title("Mean block perplexity per domain over training (dotted: plan epoch starts)")
    ax.grid(True, which="major", alpha=0.3)
    return save_figure(fig, path)


def _plot_focus_share(path: Path, focus: list[dict], totals: dict[int, int], name) -> Path:
    doms = [d for d in sorted(totals) if totals[d] > 0]
    fig = figure(max(8.0, 2.5 + len(focus) * (0.35 * len(doms) + 0.8)), 5.0)
    ax = fig.add_subplot()
    x = np.arange(len(focus))
    width = 0.8 / max(len(doms), 1)
    colors = domain_colors(len(doms))
    for j, (d, c) in enumerate(zip(doms, colors)):
        share = np.array([f["kept_share_per_domain"].get(name(d), np.nan) for f in focus], dtype=float) * 100
        bars = ax.bar(x - 0.4 + width * (j + 0.5), np.nan_to_num(share), width, color=c,
                      label=f"{name(d)} ({totals[d]:,} blocks)")
        if len(doms) * len(focus) <= 40:
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    for i, f in enumerate(focus):
        if math.isfinite(f["kept_share"]):
            ax.hlines(f["kept_share"] * 100, i - 0.45, i + 0.45, color="black", ls="--", lw=1.2,
                      label="all blocks" if i == 0 else None)
    labels = []
    for f in focus:
        lab = f"epoch {f['epoch']}"
        if f.get("drop_percent") is not None:
            lab += f"\ndrop {f['drop_percent']:g}%"
        labels.append(lab)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 110)
    ax.set_ylabel("share of the domain's blocks kept (%)")
    fig.suptitle("Focus decisions: share of each domain's blocks kept (dashed: all blocks)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


# ---- report ----------------------------------------------------------------------------------------------------------


def _pct(x) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.2g}%" if 0 < x < 0.001 else f"{100 * x:.1f}%"


def _g(x) -> str:
    return "nan" if x is None else (f"{x:.4g}" if math.isfinite(x) else str(x))


def _fates_row(label: str, s: dict) -> str:
    f = s["fractions"]
    return (f"| {label} | {s['blocks']:,} | {_pct(f['learned'])} | {_pct(f['unlearned'])} | {_pct(f['forgotten'])} "
            f"| {_pct(s['forgotten_multiple_share'])} | {_pct(f['unseen_or_once'])} | {s['nonfinite_visits']:,} |")


def _trajectory_text(traj: list[dict], limit: int = 12) -> str:
    parts = [f"e{t['epoch']} {t['phase']} {_g(t['ppl'])}" for t in traj]
    if len(parts) > limit:
        parts = parts[: limit // 2] + [f"… ({len(parts) - limit} more) …"] + parts[-limit // 2 :]
    return " → ".join(parts) if parts else "(no visits)"


def _excerpt_text(ex: dict, text_note: str | None) -> list[str]:
    lines = [
        f"### block {ex['block_id']} · {ex['domain']} · "
        + (f"forgotten {ex['times_forgotten']}×" if ex["fate"] == "forgotten" else ex["fate"].replace("_", " "))
        + f" · last ppl {_g(ex['last_ppl'])} (first {_g(ex['first_ppl'])}, min {_g(ex['min_ppl'])})",
        "",
        f"ppl: {_trajectory_text(ex['trajectory'])}",
        "",
    ]
    if ex.get("text") is not None:
        lines += ["    " + line for line in ex["text"].splitlines() or [""]]
    else:
        lines.append(f"_{text_note or 'text unavailable'}_")
    return lines + [""]


def _nonfinite_per_epoch(epochs: list[dict], limit: int = 10) -> str:
    parts = [f"e{e['epoch']} {e['kind']} {e['nonfinite']:,}" for e in epochs if e["nonfinite"]]
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f", … ({more} more epochs)" if more > 0 else "")


def format_report(result: dict) -> str:
    """The result of ``analyze_run`` as Markdown (also readable as plain text); this is what report.md holds."""
    s = result["summary"]
    plan = result.get("plan") or {}
    L = [f"# Curriculum analysis: {result['run_dir']}", ""]
    kinds = [e["kind"] for e in result["epochs"]]
    L.append(
        f"Plan {plan.get('name', '?')!s}: {len(kinds)} epoch(s) logged ("
        + ", ".join(f"{k} ×{kinds.count(k)}" for k in ("learn", "focus", "review") if k in kinds)
        + f"), {s['blocks']:,} blocks seen, {s['visits']:,} block visits"
        + (f", {result['total_steps']:,} steps planned" if result.get("total_steps") else "")
        + "."
    )
    nonfin = s["nonfinite_visits"]
    L.append(
        f"Non-finite losses (NaN/inf): {nonfin:,} of {s['visits']:,} visits"
        + (f" ({_pct(nonfin / s['visits'])}); left out of the plots and the fate trajectories; per epoch: "
           + _nonfinite_per_epoch(result["epochs"]) if nonfin else "")
        + "."
    )
    tol = result.get("rel_tol", 0.0)
    L.append(f"Fall/rise tolerance: {tol:g} ({'strict comparisons' if not tol else f'changes within {tol:.0%} are flat'}).")
    L += ["", "## Block fates", "",
          "| scope | blocks | learned | unlearned | forgotten ≥1 | of those ≥2 (multiple descent) | <2 finite visits | non-finite visits |",
          "|---|---:|---:|---:|---:|---:|---:|---:|",
          _fates_row("**all**", s)]
    for dname, ds in s["per_domain"].items():
        L.append(_fates_row(dname, ds))
    L += ["", "## Compared with the LFR paper (Prakriya et al., arXiv 2409.06131)", ""]
    paper = result["paper"]
    L.append(f"- forgotten at least once: {_pct(s['fractions']['forgotten'])} of blocks "
             f"({s['counts']['forgotten']:,} of {s['blocks']:,}; {_pct(s['forgotten_of_revisited'])} of the "
             f"{s['revisited']:,} with ≥2 finite visits) — paper: {paper['forgotten']:.0%}")
    L.append(f"- forgotten more than once (multiple descent), share of the forgotten: "
             f"{_pct(s['forgotten_multiple_share'])} ({s['forgotten_multiple']:,} of {s['counts']['forgotten']:,}) — "
             f"paper: {paper['forgotten_multiple_share']:.0%}")
    L += ["", "## Focus decisions", ""]
    if result["focus"]:
        dnames = list(dict.fromkeys(k for f in result["focus"] for k in f["kept_share_per_domain"]))
        L.append("| epoch | drop % | kept | threshold ppl | non-finite kept | " + " | ".join(f"{d} kept" for d in dnames) + " |")
        L.append("|---:|---:|---:|---:|---:|" + "---:|" * len(dnames))
        for f in result["focus"]:
            cells = [str(f["epoch"]), _g(f["drop_percent"]) if f["drop_percent"] is not None else "?",
                     f"{f['n_kept']} of {f['n_total']} ({_pct(f['kept_share'])})", _g(f["threshold_ppl"]),
                     str(f["n_nonfinite_kept"])]
            cells += [_pct(f["kept_share_per_domain"].get(d)) for d in dnames]
            L.append("| " + " | ".join(cells) + " |")
        L.append(f"\n(domain sizes from {result.get('domain_totals_from', '?')})")
    else:
        L.append("No focus decision in this run.")
    note = result.get("text_note")
    L += ["", f"## Most-forgotten blocks (top {result['top_k']}: most falls→rises, then largest rise above the minimum)", ""]
    if result["excerpts"]["most_forgotten"]:
        for ex in result["excerpts"]["most_forgotten"]:
            L += _excerpt_text(ex, note)
    else:
        L += ["No block was forgotten.", ""]
    L += [f"## Hardest blocks (top {result['top_k']}: highest last perplexity)", ""]
    if result["excerpts"]["hardest"]:
        for ex in result["excerpts"]["hardest"]:
            L += _excerpt_text(ex, note)
    else:
        L += ["No block has a finite perplexity.", ""]
    L += ["## Files", ""]
    for key, p in {**result.get("files", {}), **result["plots"]}.items():
        L.append(f"- {key}: {p}" if p else f"- {key}: not written")
    if result["notes"]:
        L += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(L) + "\n"
