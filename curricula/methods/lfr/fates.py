"""Block fates: classify each block by its perplexity trajectory over its visits (for analysis after a run).

The LFR paper (Prakriya et al., arXiv 2409.06131) reports that about 25 % of blocks are forgotten at least once and
that 82 % of those are forgotten more than once ("multiple descent"). This module measures the same from a curriculum
log, an Arrow table with one row per visit: ``block_id, domain_id, epoch, step, loss``.

Definitions, for one block with visits ordered by (epoch, step) and perplexities p_1..p_m (p = exp(loss); visits
whose loss is not finite are left out, and ``visits`` counts the ones kept), relative tolerance ``r >= 0`` (default 0,
strict):
  * a step j -> j+1 is a **fall** if p_{j+1} < p_j * (1 - r), a **rise** if p_{j+1} > p_j * (1 + r), else **flat**;
  * flat steps are ignored; of the remaining falls and rises in order, a **fall -> rise turn** is a fall directly
    followed by a rise. ``times_forgotten`` = number of such turns;
  * ``unseen_or_once``: fewer than 2 (finite) visits;
  * ``forgotten``: times_forgotten >= 1 (it got easier, then harder again); "multiple descent" when >= 2;
  * ``learned``: no turn, and p_m < p_1 * (1 - r) (ends lower than it started and never rose after a fall);
  * ``unlearned``: no turn, and p_m >= p_1 * (1 - r) (did not end lower: rose, or stayed within tolerance).
Every block with >= 2 visits is exactly one of forgotten / learned / unlearned.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curricula.errors import CurriculaError


class FatesError(CurriculaError):
    """A curriculum log or setting block_fates cannot use; the message says which."""

FATES: tuple[str, ...] = ("unseen_or_once", "learned", "unlearned", "forgotten")
UNSEEN_OR_ONCE, LEARNED, UNLEARNED, FORGOTTEN = range(4)
_LOG_COLUMNS = ("block_id", "domain_id", "epoch", "step", "loss")


def _col(log: pa.Table, name: str, dtype) -> np.ndarray:
    if name not in log.column_names:
        raise FatesError(f"curriculum log has no {name!r} column; expected columns {list(_LOG_COLUMNS)}")
    col = log.column(name)
    if col.null_count:
        raise FatesError(f"curriculum log column {name!r} has {col.null_count} nulls")
    return col.to_numpy().astype(dtype, copy=False)


def block_fates(log: pa.Table, rel_tol: float = 0.0) -> pa.Table:
    """One row per block in the log: block_id, domain_id (of its first visit), visits, first_ppl, last_ppl, fate
    (dictionary-encoded string, see ``FATES``), times_forgotten. Sorted by block_id. See the module docstring."""
    if not rel_tol >= 0:
        raise FatesError(f"rel_tol={rel_tol!r} must be >= 0 (0 = strict comparisons)")
    bid = _col(log, "block_id", np.int64)
    dom = _col(log, "domain_id", np.int32)
    epoch = _col(log, "epoch", np.int64)
    step = _col(log, "step", np.int64)
    loss = _col(log, "loss", np.float64)
    finite = np.isfinite(loss)
    order = np.lexsort((step, epoch, bid))
    b, d, ok = bid[order], dom[order], finite[order]
    with np.errstate(over="ignore"):
        p = np.exp(loss[order])

    # blocks, with the domain of the first visit (finite or not)
    first_row = np.ones(b.size, dtype=bool)
    np.not_equal(b[1:], b[:-1], out=first_row[1:])
    blocks, block_dom = b[first_row], d[first_row]
    n_blocks = blocks.size

    # finite visits only: group index per visit, pairs of consecutive visits within a block
    b, p = b[ok], p[ok]
    g = np.searchsorted(blocks, b)
    visits = np.bincount(g, minlength=n_blocks).astype(np.int32)
    same = g[1:] == g[:-1]
    fall = same & (p[1:] < p[:-1] * (1 - rel_tol))
    rise = same & (p[1:] > p[:-1] * (1 + rel_tol))
    moving = fall | rise
    mg, mfall = g[1:][moving], fall[moving]  # the non-flat steps, in order, with their block
    turn = mfall[:-1] & ~mfall[1:] & (mg[:-1] == mg[1:])
    times = np.bincount(mg[1:][turn], minlength=n_blocks).astype(np.int32)

    first_ppl = np.full(n_blocks, np.nan)
    last_ppl = np.full(n_blocks, np.nan)
    if b.size:
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], g.size] - 1
        first_ppl[g[starts]] = p[starts]
        last_ppl[g[ends]] = p[ends]

    fate = np.full(n_blocks, UNLEARNED, dtype=np.int8)
    fate[last_ppl < first_ppl * (1 - rel_tol)] = LEARNED
    fate[times > 0] = FORGOTTEN
    fate[visits < 2] = UNSEEN_OR_ONCE
    return pa.table(
        {
            "block_id": pa.array(blocks),
            "domain_id": pa.array(block_dom),
            "visits": pa.array(visits),
            "first_ppl": pa.array(first_ppl),
            "last_ppl": pa.array(last_ppl),
            "fate": pa.DictionaryArray.from_arrays(pa.array(fate), pa.array(list(FATES))),
            "times_forgotten": pa.array(times),
        }
    )


def _summary(fate: np.ndarray, times: np.ndarray) -> dict:
    n = int(fate.size)
    counts = np.bincount(fate, minlength=len(FATES))
    forgotten = int(counts[FORGOTTEN])
    multiple = int(np.count_nonzero(times >= 2))
    return {
        "blocks": n,
        "counts": {name: int(c) for name, c in zip(FATES, counts)},
        "fractions": {name: (float(c) / n if n else float("nan")) for name, c in zip(FATES, counts)},
        "forgotten_multiple": multiple,
        # share of forgotten blocks forgotten >= 2 times ("multiple descent"; the paper reports 82 %)
        "forgotten_multiple_share": multiple / forgotten if forgotten else float("nan"),
    }


def summarize_fates(fates: pa.Table) -> dict:
    """Counts and fractions of each fate over all blocks in ``fates`` (from ``block_fates``), overall and per domain,
    plus the share of forgotten blocks that were forgotten at least twice."""
    fate = fates.column("fate").combine_chunks()
    if isinstance(fate, pa.DictionaryArray) and fate.dictionary.to_pylist() == list(FATES):
        codes = fate.indices.to_numpy().astype(np.int64)
    else:  # plain strings (e.g. after a round trip through another tool)
        strings = np.asarray(fate.cast(pa.string()).to_numpy(zero_copy_only=False))
        names, inverse = np.unique(strings, return_inverse=True)
        unknown = sorted(set(names) - set(FATES))
        if unknown:
            raise FatesError(f"unknown fate(s) {unknown}; expected {list(FATES)}")
        codes = np.array([FATES.index(x) for x in names], dtype=np.int64)[inverse]
    times = fates.column("times_forgotten").to_numpy()
    dom = fates.column("domain_id").to_numpy()
    out = _summary(codes, times)
    out["per_domain"] = {int(d): _summary(codes[dom == d], times[dom == d]) for d in np.unique(dom)}
    return out
