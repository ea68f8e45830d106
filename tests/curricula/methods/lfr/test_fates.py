"""Block fates (``curricula/methods/lfr/fates.py``): learned, unlearned, forgotten (once or more: multiple descent)
from a curriculum log, and their summary. Fast (no torch, no models)."""

import numpy as np
import pyarrow as pa
import pytest

from curricula.methods.lfr import FATES, block_fates, summarize_fates


def fate_log(trajectories, domains=None, seed=0):
    """A shuffled curriculum log from {block_id: [ppl per visit]} (one visit per epoch, step grows with epoch)."""
    rows = []
    for b, ppls in trajectories.items():
        for e, p in enumerate(ppls):
            rows.append((b, (domains or {}).get(b, 0), e, 100 * e + b, float(np.log(p))))
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    cols = list(zip(*rows))
    return pa.table(
        {
            "block_id": pa.array(cols[0], pa.int64()),
            "domain_id": pa.array(cols[1], pa.int32()),
            "epoch": pa.array(cols[2], pa.int32()),
            "step": pa.array(cols[3], pa.int64()),
            "loss": pa.array(cols[4], pa.float32()),
        }
    )


TRAJECTORIES = {
    0: [5, 4, 3],  # learned
    1: [3, 4, 5],  # unlearned
    2: [5, 3, 4],  # forgotten once
    3: [5, 3, 4, 2, 6],  # forgotten twice: multiple descent
    4: [5],  # single visit
    5: [5, 4, 4.001, 3],  # a tiny wiggle: forgotten when strict, learned with a 1 % tolerance
    6: [3, 5, 2],  # rose, then fell below the start: never rose after a fall -> learned
    7: [3, 3],  # flat: did not end lower -> unlearned
    8: [6, 2, 2, 7],  # fall, flat, rise: still one fall -> rise turn
}


def test_block_fates_on_hand_made_trajectories():
    log = fate_log(TRAJECTORIES, domains={b: b % 2 for b in TRAJECTORIES})
    f = block_fates(log).to_pydict()
    assert f["block_id"] == list(range(9))
    assert f["fate"] == [
        "learned", "unlearned", "forgotten", "forgotten", "unseen_or_once", "forgotten", "learned", "unlearned",
        "forgotten",
    ]  # fmt: skip
    assert f["times_forgotten"] == [0, 0, 1, 2, 0, 1, 0, 0, 1]
    assert f["visits"] == [3, 3, 3, 5, 1, 4, 3, 2, 4]
    assert np.allclose(f["first_ppl"], [5, 3, 5, 5, 5, 5, 3, 3, 6], rtol=1e-6)
    assert np.allclose(f["last_ppl"], [3, 5, 4, 6, 5, 3, 2, 3, 7], rtol=1e-6)
    assert f["domain_id"] == [b % 2 for b in range(9)]
    tol = block_fates(log, rel_tol=0.01).to_pydict()
    assert tol["fate"][5] == "learned" and tol["times_forgotten"][5] == 0
    assert tol["fate"][:5] == f["fate"][:5]


def test_block_fates_ignores_nonfinite_visits():
    log = fate_log({0: [5, 3, 4], 1: [2, 1]})
    loss = log.column("loss").to_numpy().copy()
    loss[(log.column("block_id").to_numpy() == 1) & (log.column("epoch").to_numpy() == 1)] = np.nan
    f = block_fates(log.set_column(4, "loss", pa.array(loss))).to_pydict()
    assert f["fate"] == ["forgotten", "unseen_or_once"] and f["visits"] == [3, 1]


def test_summarize_fates_fractions():
    f = block_fates(fate_log(TRAJECTORIES, domains={b: b % 2 for b in TRAJECTORIES}))
    s = summarize_fates(f)
    assert s["blocks"] == 9
    assert s["counts"] == {"unseen_or_once": 1, "learned": 2, "unlearned": 2, "forgotten": 4}
    assert s["fractions"]["forgotten"] == pytest.approx(4 / 9)
    assert sum(s["fractions"].values()) == pytest.approx(1.0)
    assert s["forgotten_multiple"] == 1 and s["forgotten_multiple_share"] == pytest.approx(1 / 4)
    even, odd = s["per_domain"][0], s["per_domain"][1]  # even: 0, 2, 4, 6, 8; odd: 1, 3, 5, 7
    assert even["counts"] == {"unseen_or_once": 1, "learned": 2, "unlearned": 0, "forgotten": 2}
    assert odd["fractions"] == {"unseen_or_once": 0.0, "learned": 0.0, "unlearned": 0.5, "forgotten": 0.5}
    assert odd["forgotten_multiple_share"] == pytest.approx(0.5)
    plain = f.set_column(5, "fate", f.column("fate").cast(pa.string()))  # plain strings work too
    assert summarize_fates(plain)["counts"] == s["counts"]
    assert set(FATES) == set(s["counts"])
