"""LFR policy (Learn, Focus, Review; Prakriya et al., arXiv 2409.06131): which blocks each epoch trains on.

Learn and review epochs train every block (and record every block's perplexity through ``IndexTable.update``). A focus
phase drops the ``s`` % of blocks with the LOWEST latest perplexity, i.e. the ones the model already finds easy. The
decision is made once, when the focus phase's first epoch begins (``LFRPolicy.eligible_for``), from the perplexity each
block had when it was last seen, over ALL blocks (a block dropped earlier keeps its stale perplexity and competes with
it). It is written into the table's ``eligible`` column, which ``IndexTable.save`` persists, so the later epochs of the
phase and a resumed run reuse the same set.

Selection rules (``select_focus``):
  * exactly ``floor(n * s / 100)`` of the n blocks leave (``plan.n_dropped``);
  * ranked by the ``loss`` column (perplexity is exp(loss), the same order, but exp overflows float32 for a loss above
    ~88.7, and a diverged run would make every block's perplexity ``inf`` and "rank" them all as ties); among blocks with
    equal loss, the LOWER block_id leaves first, so the result depends on nothing but the table (no sort stability,
    thread count or RNG);
  * blocks whose latest loss is not finite (never seen, NaN, +-inf) are never ranked and never dropped; they are kept
    and counted. The drop count is taken from the finite ones; if there are fewer finite blocks than that, all finite
    ones are dropped and ``FocusReport.shortfall`` says how many short it fell.
  * O(n), no full sort: the threshold is the exact k-th smallest loss (``np.partition``; on large tables only of
    the values that a random sample brackets), then the ties at the threshold are counted and split exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from curricula.methods.lfr.index_table import IndexTable
from curricula.methods.lfr.plan import Phase, PhaseEpoch, Plan, PlanError, n_dropped


@dataclass(frozen=True)
class FocusReport:
    """What a focus selection did. ``threshold_ppl`` is the perplexity of the hardest dropped block: every block below
    it left, every block above it stayed, and the ``n_tied`` blocks at it were split by block_id (``n_tied_dropped``
    of them, the lowest ids, left). NaN when nothing was dropped."""

    drop_percent: float
    n_total: int
    n_drop_target: int  # floor(n_total * drop_percent / 100)
    n_dropped: int
    n_kept: int
    n_nonfinite_kept: int  # latest loss NaN/inf or never seen: kept without being ranked
    shortfall: int  # n_drop_target - n_dropped (> 0 only when too few blocks had a finite perplexity)
    threshold_ppl: float
    n_tied: int
    n_tied_dropped: int
    kept_per_domain: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able (domain ids become string keys)."""
        d = asdict(self)
        d["kept_per_domain"] = {str(k): v for k, v in self.kept_per_domain.items()}
        return d


def _check_percent(drop_percent: float) -> float:
    try:
        Phase("focus", 1, drop_percent)
    except PlanError as e:
        raise PlanError(str(e).replace("focus phase: ", "select_focus: ")) from None
    return float(drop_percent)


_SAMPLE = 1 << 20  # sample size for the threshold estimate of large tables
_SMALL = 1 << 22  # below this many rankable blocks, partition them all


def _kth_smallest(values: np.ndarray, k: int, rankable: np.ndarray | None) -> np.float32:
    """Exact k-th smallest (1-based) of ``values[rankable]`` (all values when ``rankable`` is None), in O(n).

    Small inputs: one ``np.partition``. Large inputs: a fixed-seed random sample brackets the answer between two
    values ``lo <= t <= hi`` (with a margin of 8 standard deviations of the sample quantile); counting the values
    below ``lo`` and partitioning only the few in [lo, hi] gives t exactly. If the bracket misses (or is not narrow),
    fall back to partitioning everything, so the result never depends on the sample, only the speed does.
    """
    n_rank = values.size if rankable is None else int(np.count_nonzero(rankable))
    if n_rank <= _SMALL:
        key = values.copy() if rankable is None else values[rankable]
        return np.partition(key, k - 1)[k - 1]
    rng = np.random.default_rng(0x1F2)
    idx = rng.integers(0, values.size, _SAMPLE)
    sample = values[idx] if rankable is None else values[idx][rankable[idx]]
    m = sample.size
    q = k / n_rank
    margin = 8.0 * np.sqrt(q * (1 - q) / max(m, 1)) + 2.0 / max(m, 1)
    lo_r, hi_r = int(np.floor((q - margin) * m)), int(np.ceil((q + margin) * m))
    if m and 0 <= lo_r and hi_r < m:
        sample.partition([lo_r, hi_r])
        lo, hi = sample[lo_r], sample[hi_r]
        below = values < lo
        if rankable is not None:
            below &= rankable
        n_below = int(np.count_nonzero(below))
        del below
        band = values >= lo
        band &= values <= hi
        if rankable is not None:
            band &= rankable
        cand = values[band]
        del band
        if n_below < k <= n_below + cand.size and cand.size <= values.size // 8:
            return np.partition(cand, k - n_below - 1)[k - n_below - 1]
    key = np.where(rankable, values, np.float32(np.inf)) if rankable is not None else values.copy()
    return np.partition(key, k - 1)[k - 1]


def _ppl(loss) -> float:
    """The index table's perplexity of a loss (float32 exp, as ``IndexTable.update`` computes it; inf on overflow)."""
    with np.errstate(over="ignore"):
        return float(np.exp(np.float32(loss)))


def focus_mask(table: IndexTable, drop_percent: float) -> tuple[np.ndarray, FocusReport]:
    """``select_focus`` returning a bool keep-mask (length n) instead of ids; cheaper to hand to ``set_eligible``."""
    s = _check_percent(drop_percent)
    n = table.n
    target = n_dropped(n, s)
    key = table.loss  # rank by loss: exp(loss) overflows float32 and makes diverged blocks tie at inf
    finite = np.isfinite(table.loss)  # rankable: seen, with a finite latest loss
    n_finite = int(np.count_nonzero(finite))
    rankable = None if n_finite == n else finite  # the usual case after a learn epoch: skip all masking
    k = min(target, n_finite)
    threshold, n_tied, n_tied_dropped = float("nan"), 0, 0
    if k == 0:
        keep = np.ones(n, dtype=bool)
    elif k == n_finite:  # drop every rankable block
        keep = ~finite
        t = np.max(key[finite])
        threshold = _ppl(t)
        n_tied = n_tied_dropped = int(np.count_nonzero(key[finite] == t))
    else:
        t = _kth_smallest(key, k, rankable)  # the loss of the k-th easiest rankable block
        drop = key < t
        if rankable is not None:
            drop &= rankable  # a -inf loss is below everything but is not rankable
        need = k - int(np.count_nonzero(drop))  # >= 1 blocks at exactly t must also leave
        tied = np.flatnonzero(key == t)  # ascending block ids: the tie rule is "lowest id leaves first"
        drop[tied[:need]] = True
        keep = np.logical_not(drop, out=drop)
        threshold, n_tied, n_tied_dropped = _ppl(t), int(tied.size), need
    n_kept = int(np.count_nonzero(keep))
    report = FocusReport(
        drop_percent=s,
        n_total=n,
        n_drop_target=target,
        n_dropped=n - n_kept,
        n_kept=n_kept,
        n_nonfinite_kept=n - n_finite,
        shortfall=target - (n - n_kept),
        threshold_ppl=threshold,
        n_tied=n_tied,
        n_tied_dropped=n_tied_dropped,
        kept_per_domain=table.count_per_domain(keep),
    )
    return keep, report


def select_focus(table: IndexTable, drop_percent: float) -> tuple[np.ndarray, FocusReport]:
    """The ids (ascending, int64) that a focus phase dropping ``drop_percent`` % keeps, and a report. See the module
    docstring for the exact rules (count, tie break, non-finite blocks)."""
    keep, report = focus_mask(table, drop_percent)
    return np.flatnonzero(keep), report


class LFRPolicy:
    """Maps each epoch of a plan to its block set and writes it into the table's ``eligible`` column.

    Stateful only in which focus phase it has decided; ``state_dict``/``load_state_dict`` carry that across a resume
    (restore them together with the table saved at the same checkpoint).
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self._epochs = plan.epochs()
        self.decided_phase: int | None = None  # phase_index whose focus set the table's eligible column holds
        self.last_report: FocusReport | None = None

    def eligible_for(self, epoch: PhaseEpoch, table: IndexTable) -> np.ndarray:
        """Block ids (ascending) that ``epoch`` trains on; also sets ``table``'s eligible column to them."""
        if not (0 <= epoch.index < len(self._epochs)) or self._epochs[epoch.index] != epoch:
            raise PlanError(f"{epoch} is not an epoch of plan {self.plan.name!r}; take epochs from plan.epochs()")
        if epoch.kind != "focus":  # learn / review: every block
            table.set_all_eligible()
            return np.arange(table.n, dtype=np.int64)
        if epoch.phase_index != self.decided_phase:
            if epoch.starts_phase:
                # ---- THE FOCUS DECISION: first epoch of a focus phase, from every block's latest perplexity ----
                keep, self.last_report = focus_mask(table, epoch.drop_percent)
                table.set_eligible(keep)
            # else: resuming inside a focus phase without policy state; the table's saved eligible column already
            # holds the decision made at the phase's first epoch, so adopt it rather than re-deciding.
            self.decided_phase = epoch.phase_index
        return table.eligible_ids()

    def state_dict(self) -> dict:
        return {
            "plan": self.plan.to_dict(),
            "decided_phase": self.decided_phase,
            "last_report": None if self.last_report is None else self.last_report.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["plan"] != self.plan.to_dict():
            raise PlanError(
                f"the saved policy ran plan {state['plan'].get('name')!r} with different phases than "
                f"{self.plan.name!r}; resume with the same plan (and parameters)"
            )
        self.decided_phase = state["decided_phase"]
        r = state.get("last_report")
        if r is not None:
            r = dict(r, kept_per_domain={int(k): v for k, v in r["kept_per_domain"].items()})
            r = FocusReport(**r)
        self.last_report = r
