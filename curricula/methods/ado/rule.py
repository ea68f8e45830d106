"""ADO's update rule (Jiang et al., "Adaptive Data Optimization: Dynamic Sample Selection with Scaling Laws", arXiv
2410.11820), transcribed from the official code. Pure numpy; no torch, no JAX, no scipy.

Official code: ``yidingjiang/ado`` at commit ``bc3d8d0e4d6a13f40f03b2e8fb83369d773a2611`` ("Fixing update rule to the
correct version": the credit term at ADO 105 became ``p_history ** 0.5``). Abbreviations:

* **ADO** ``src/data_selectors/ado.py`` (``AdoSelector`` and the fitting functions)
* **AL** ``src/dataloader/adaptive_loader.py`` (how the selector's distribution becomes batches)
* **TRN** ``src/train.py``; configs ``configs/loader/pile_ado.yaml``, ``configs/experiment/124M_ado.yaml``

The rule, per optimizer step ``itr`` (0-based, TRN 215-235) with the global batch's per-domain counts ``c_k`` and mean
losses ``l_k``::

    history row:  n += sum_k c_k (every domain's x-axis is the TOTAL count, use_same_step_size)     ADO 129-131
                  p_history = 0.9 p_history + 0.1 c / sum c                                         ADO 135-137
                  loss row l_k (a domain absent from the batch: its previous row; first row: batch mean)  ADO 144-162
    refit when itr >= start_step and itr % update_interval == 0:                                     ADO 178-184
                  x = cumulative n at rows ignore_steps, +10, +20, ...                              ADO 218-221
                  y = savgol(loss rows, window 101, order 3)[same rows]  (smoothed over the whole history) ADO 223-224
                  per domain: argmin over 512 L-BFGS starts of
                  sum_t huber_1e-3(log y_t - log(e^a x_t^-alpha + e^e)) + penalties                 ADO 253-306
                  kept only if finite                                                               ADO 183, 201-208
    policy (once fitted, itr >= start_step):                                                         ADO 89-120
                  L_k = e^e_k + e^a_k n^-alpha_k ;  slope_k = max(alpha_k, 0.05) (L_k - e^e_k) / float32(n)
                  rho_k = slope_k mu_k p_history_k^0.5 ;  dist = clip_min_probability(rho / sum rho, 0.01)
                  p = 0.9 p_avg + 0.1 dist ;  p_avg = (1 - 1/(itr+1)) p_avg + 1/(itr+1) dist
    the next batch is drawn from p (the prior mu until the first fit)                                 AL 83-96, 126-137

Deviations (each needed to run at a million steps with flat state and a cheap step; see ``method.py``):

* **bounded history** (``SmoothedLossHistory``): the official fit keeps every step's row (T x K, 21 MB at 60k steps
  x 22 domains in float64) and smooths all of it at every refit. Here the Savitzky-Golay value of a fit row is computed
  once, when the 50 rows after it have arrived (the official interior formula, same arithmetic; rows closer than 50 to
  the end are the official edge polynomial of the last 101 rows, recomputed at each refit). At most ``max_points``
  fit rows are kept: when full, every other one is dropped and the row stride doubles (10 -> 20 -> 40 ...), and each
  kept point's huber term is weighted by stride / 10, so the objective still approximates the official sum over every
  10th row. With fewer than ``max_points`` rows (the first ``10 * max_points + ignore_steps`` steps) the points, the
  weights (1) and the fit are the official ones;
* **the fitter**: a numpy L-BFGS (float64, Armijo backtracking, the official grid, objective, tol and maxiter) stands
  in for ``jaxopt.LBFGS`` (float32, zoom line search); measured against the verbatim JAX code on a demo stream:
  parameters within 6e-4, sampling distribution within 4.4e-5 (the objective is nearly flat: near-ties between
  starts). ``starts`` can take a subgrid of the official 512 starts (64, 8) to cost less;
* **where the refit runs** (``fit_lag``): a refit started at ``itr = s`` may run in a background thread; its parameters
  take effect at ``itr = s + fit_lag`` on every process (0: synchronously at ``s``, as the official code).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

OFFICIAL_REPO = "yidingjiang/ado"
OFFICIAL_COMMIT = "bc3d8d0e4d6a13f40f03b2e8fb83369d773a2611"

HISTORY_DECAY = 0.9  # ADO 135: gamma of p_history
POLICY_KEEP, POLICY_NEW = 0.9, 0.1  # ADO 113: p = 0.9 p_avg + 0.1 dist
CREDIT_EXPONENT = 0.5  # ADO 105: p_history ** 0.5
MIN_PROBABILITY = 1e-2  # ADO 111
EXPONENT_FLOOR = 0.05  # ADO 96
HUBER_DELTA = 1e-3  # ADO 253
LBFGS_TOL, LBFGS_MAXITER = 1e-5, 200  # ADO 303
GRID_STARTS = {512: 1, 64: 2, 8: 4}  # starts -> every n-th value of each axis of the official grid (ADO 294-296)


class FitCancelled(Exception):
    """A background fit was cancelled (its result would never be used)."""


# ---- the official helpers (module level in ado.py) -------------------------------------------------------------------


def clip_min_probability(probs: np.ndarray, min_prob: float) -> np.ndarray:
    """ADO 245-250, verbatim. With ``K * min_prob <= 1`` the deficit is 0: a floor followed by renormalisation."""
    total_deficit = max(min_prob * len(probs) - probs.sum(), 0)   # ADO 246
    scale_factor = (1 - total_deficit) / probs.sum()             # ADO 247
    scaled_probs = probs * scale_factor                          # ADO 248
    clipped_probs = np.maximum(scaled_probs, min_prob)           # ADO 249
    return clipped_probs / clipped_probs.sum()                   # ADO 250


def scaling_law(params, D):
    """ADO 287-289: ``L(D) = exp(e) + exp(a) / D ** alpha`` (the paper's eps_k + beta_k n^-alpha_k)."""
    a, e, alpha = params
    return np.exp(e) + np.exp(a) / D ** alpha


def loss_and_grad(params: np.ndarray, logD: np.ndarray, logL: np.ndarray, weight: float = 1.0,
                  delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """ADO 253-284 (``huber_loss``, ``log_sum_exp``, ``loss_fn``) and its gradient (what ``jax.grad`` gives jaxopt),
    batched over G parameter rows ``(a, e, alpha)``::

        sum_t huber_delta(log L_t - logaddexp(a - alpha log D_t, e))      ADO 253-257, 275-279, 284
        + max(alpha - 0.8, 0) - min(alpha, 0.001) + max(a - 6.5, 0) - min(e - 0.5, 0)   ADO 280-283

    ``weight`` multiplies every huber term (the bounded history's stride weight; 1: the official objective, and
    then the arithmetic is exactly the official transcription's). Returns values (G,) and gradients (G, 3)."""
    P = np.atleast_2d(np.asarray(params, dtype=np.float64))
    a, e, alpha = P[:, 0:1], P[:, 1:2], P[:, 2:3]
    arg1 = a - alpha * logD[None, :]                 # ADO 275
    pred = np.logaddexp(arg1, e)                     # ADO 276-278
    s1 = np.exp(arg1 - pred)                         # d pred / d a
    s2 = np.exp(e - pred)                            # d pred / d e
    diff = logL[None, :] - pred
    ad = np.abs(diff)
    big = ad > delta
    hub = np.where(big, delta * (ad - .5 * delta), 0.5 * ad ** 2)                   # ADO 253-257
    dh = np.where(big, -delta * np.sign(diff), -diff)                               # d huber / d pred
    if weight != 1.0:
        hub = hub * weight
        dh = dh * weight
    val = np.sum(hub, axis=1)                                                       # ADO 284
    ga = np.sum(dh * s1, axis=1)
    ge = np.sum(dh * s2, axis=1)
    gal = np.sum(dh * s1 * (-logD[None, :]), axis=1)
    a, e, alpha = P[:, 0], P[:, 1], P[:, 2]
    val = (val + np.maximum(alpha - 0.8, 0) - np.minimum(alpha, 0.001) + np.maximum(a - 6.5, 0)
           - np.minimum(e - 0.5, 0))                                                # ADO 280-284
    gal = gal + (alpha > 0.8) - (alpha < 0.001)
    ga = ga + (a > 6.5)
    ge = ge - (e < 0.5)
    return val, np.stack([ga, ge, gal], axis=1)


def lbfgs(X0: np.ndarray, logD: np.ndarray, logL: np.ndarray, weight: float = 1.0, maxiter: int = LBFGS_MAXITER,
          tol: float = LBFGS_TOL, history_size: int = 10, max_stepsize: float = 1.0, maxls: int = 30,
          should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS run independently (vectorised) from every row of ``X0``: the stand-in for
    ``jax.vmap(jaxopt.LBFGS(loss_fn, tol=1e-5, maxiter=200).run)`` (ADO 303-305). Two-loop recursion over the last
    ``history_size`` pairs, Armijo backtracking (c1 = 1e-4, halving, first trial step 1 as jaxopt's max_stepsize),
    a start stops at ``||grad|| <= tol``, at a failed line search or after ``maxiter`` iterations. ``should_stop``
    (checked every iteration) raises ``FitCancelled``. Returns (X (G, 3), f (G,))."""
    X = np.array(X0, dtype=np.float64)
    G = X.shape[0]
    m = history_size
    f, g = loss_and_grad(X, logD, logL, weight)
    S = np.zeros((G, m, 3))
    Y = np.zeros((G, m, 3))
    V = np.zeros((G, m), dtype=bool)           # valid slots are contiguous at the end; slot m-1 = newest
    active = np.ones(G, dtype=bool)
    for _ in range(maxiter):
        if should_stop is not None and should_stop():
            raise FitCancelled()
        active &= np.isfinite(f) & (np.linalg.norm(g, axis=1) > tol)
        if not active.any():
            break
        q = g.copy()
        al = np.zeros((G, m))
        rho = np.zeros((G, m))
        for j in range(m - 1, -1, -1):
            sy = np.sum(S[:, j] * Y[:, j], axis=1)
            rho[:, j] = np.where(V[:, j], 1.0 / np.where(V[:, j], sy, 1.0), 0.0)
            al[:, j] = rho[:, j] * np.sum(S[:, j] * q, axis=1)
            q = q - al[:, j, None] * Y[:, j]
        yy = np.sum(Y[:, m - 1] * Y[:, m - 1], axis=1)
        sy_last = np.sum(S[:, m - 1] * Y[:, m - 1], axis=1)
        gamma = np.where(V[:, m - 1], sy_last / np.where(V[:, m - 1], yy, 1.0), 1.0)
        q = q * gamma[:, None]
        for j in range(m):
            b = rho[:, j] * np.sum(Y[:, j] * q, axis=1)
            q = q + (al[:, j] - b)[:, None] * S[:, j]
        d = -q
        gd = np.sum(g * d, axis=1)
        bad = gd >= 0
        if bad.any():
            d[bad] = -g[bad]
            gd[bad] = -np.sum(g[bad] * g[bad], axis=1)
            V[bad] = False
        t = np.full(G, max_stepsize)
        done = ~active
        Xn, fn, gn = X.copy(), f.copy(), g.copy()
        for _ls in range(maxls):
            idx = np.nonzero(~done)[0]
            if idx.size == 0:
                break
            cand = X[idx] + t[idx, None] * d[idx]
            fc, gc = loss_and_grad(cand, logD, logL, weight)
            ok = np.isfinite(fc) & (fc <= f[idx] + 1e-4 * t[idx] * gd[idx])
            acc = idx[ok]
            Xn[acc], fn[acc], gn[acc] = cand[ok], fc[ok], gc[ok]
            done[acc] = True
            t[idx[~ok]] *= 0.5
        accepted = active & done
        active &= done                             # a failed line search stops that start
        s = Xn - X
        y = gn - g
        upd = accepted & (np.sum(s * y, axis=1) > 1e-12)
        if upd.any():
            S[upd] = np.roll(S[upd], -1, axis=1)
            Y[upd] = np.roll(Y[upd], -1, axis=1)
            V[upd] = np.roll(V[upd], -1, axis=1)
            S[upd, m - 1] = s[upd]
            Y[upd, m - 1] = y[upd]
            V[upd, m - 1] = True
        X[accepted], f[accepted], g[accepted] = Xn[accepted], fn[accepted], gn[accepted]
    return X, f


def init_grid(starts: int = 512) -> np.ndarray:
    """ADO 294-299: the 8 x 8 x 8 grid of starts a in {-2..5}, e in {-2, -1.5, .., 1.5}, alpha in {0, .1, .., .7}
    (``meshgrid(indexing='ij')``); ``starts`` 64 or 8 take every 2nd or 4th value of each axis."""
    step = GRID_STARTS[int(starts)]
    init_a = np.arange(-2, 6, 1)[::step]            # ADO 294
    init_e = np.arange(-2, 2, 0.5)[::step]          # ADO 295
    init_alpha = np.arange(0, 0.8, 0.1)[::step]     # ADO 296
    X, Y, Z = np.meshgrid(init_a, init_e, init_alpha, indexing='ij')                  # ADO 298
    return np.stack((X.flatten(), Y.flatten(), Z.flatten()), axis=1).astype(np.float64)  # ADO 299


def fit_scaling_law(x: np.ndarray, y: np.ndarray, weight: float = 1.0, starts: int = 512,
                    should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """ADO 292-306 (``fit_scaling_law``) for one domain: L-BFGS from every start, the lowest final value
    (``nanargmin``, ADO 306). Returns (a, e, alpha)."""
    logD = np.log(np.asarray(x, dtype=np.float64))
    logL = np.log(np.asarray(y, dtype=np.float64))
    results, values = lbfgs(init_grid(starts), logD, logL, weight, should_stop=should_stop)
    return results[np.nanargmin(values)]                                            # ADO 306


def fit_scaling_laws(x: np.ndarray, Y: np.ndarray, weight: float = 1.0, starts: int = 512,
                     should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """ADO 239-242: one independent fit per domain (``jax.vmap`` over K). ``Y`` is (K, n). Returns (K, 3)."""
    return np.stack([fit_scaling_law(x, Y[k], weight, starts, should_stop) for k in range(Y.shape[0])])


def savgol_coefficients(window: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``scipy.signal.savgol_filter(x, window, order)`` in its default ``mode='interp'`` (ADO 223-224), as the numpy
    transcription computes it: the centre coefficients of the least-squares polynomial (interior rows) and, for the
    first/last ``window // 2`` rows, the polynomial fitted to the first/last ``window`` rows (``P``: its coefficients
    from the rows, ``V``: its values at the rows). Returns (centre (w,), P (order+1, w), V (w, order+1))."""
    h = window // 2
    pos = np.arange(-h, window - h, dtype=np.float64)
    centre = np.linalg.pinv(np.vander(pos, order + 1, increasing=True))[0]
    V = np.vander(np.arange(window, dtype=np.float64), order + 1, increasing=True)
    return centre, np.linalg.pinv(V), V


# ---- the bounded, incrementally smoothed history ---------------------------------------------------------------------


class SmoothedLossHistory:
    """The fit's points (ADO 218-224) without the whole history: the last ``window`` loss rows (a ring) and at most
    ``max_points`` smoothed points ``(row, x = cumulative count, y_k = savgol value)``; see the module docstring."""

    def __init__(self, k: int, ignore_steps: int, window: int = 101, order: int = 3, stride: int = 10,
                 max_points: int = 256):
        self.k, self.ignore, self.window, self.order = k, int(ignore_steps), int(window), int(order)
        self.h = self.window // 2
        self.base_stride = self.stride = int(stride)
        self.max_points = int(max_points)
        self.centre, self.P, self.V = savgol_coefficients(self.window, self.order)
        self.rows = 0  # rows pushed (T)
        self.ring_loss = np.zeros((self.window, k))
        self.ring_x = np.zeros(self.window, dtype=np.int64)
        self.n_points = 0
        self.point_rows = np.zeros(self.max_points, dtype=np.int64)
        self.point_x = np.zeros(self.max_points, dtype=np.int64)
        self.point_y = np.zeros((self.max_points, k))

    @property
    def weight(self) -> float:
        """What each point stands for, in official fit points (every ``base_stride``-th row)."""
        return self.stride / self.base_stride

    def last_row(self) -> np.ndarray:
        return self.ring_loss[(self.rows - 1) % self.window]

    def kept(self, row: int) -> bool:
        return row >= self.ignore and (row - self.ignore) % self.stride == 0

    def _rows(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``first..last`` (inclusive, all still in the ring) as a (n, K) array in row order, and their x."""
        idx = np.arange(first, last + 1) % self.window
        return self.ring_loss[idx], self.ring_x[idx]

    def push(self, x_cum: int, loss_row: np.ndarray) -> None:
        """Row ``rows`` (the loss of every domain at this step and the cumulative count after it)."""
        j = self.rows
        self.ring_loss[j % self.window] = loss_row
        self.ring_x[j % self.window] = x_cum
        self.rows = j + 1
        w, h = self.window, self.h
        if j == w - 1 and self.ignore < h:  # the first rows: the polynomial of the first `window` rows (edge)
            rows, xs = self._rows(0, w - 1)
            values = (rows.T @ self.P.T) @ self.V[:h].T  # (K, h), as the transcription's c_lo @ V[:h].T
            for i in range(h):
                if self.kept(i):
                    self._add(i, int(xs[i]), values[:, i])
        if j >= w - 1:  # row j - h now has its full window: the interior formula
            i = j - h
            if self.kept(i):
                rows, _ = self._rows(i - h, i + h)
                acc = np.zeros(self.k)
                for p in range(w):  # the order numpy's (non-BLAS) matmul of ADO 223-224 sums in
                    acc += rows[p] * self.centre[p]
                self._add(i, int(self.ring_x[i % w]), acc)

    def _add(self, row: int, x: int, y: np.ndarray) -> None:
        if not self.kept(row):
            return
        if self.n_points == self.max_points:  # full: drop every other point, double the stride
            n = self.n_points
            keep = ((self.point_rows[:n] - self.ignore) // self.stride) % 2 == 0
            m = int(keep.sum())
            self.point_rows[:m], self.point_x[:m], self.point_y[:m] = (self.point_rows[:n][keep],
                                                                        self.point_x[:n][keep], self.point_y[:n][keep])
            self.n_points, self.stride = m, self.stride * 2
            if not self.kept(row):
                return
        self.point_rows[self.n_points], self.point_x[self.n_points] = row, x
        self.point_y[self.n_points] = y
        self.n_points += 1

    def fit_points(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The points a refit now uses: x (n,), y (K, n) and the weight of each point. The rows closer than
        ``window // 2`` to the end take the edge polynomial of the last ``window`` rows (mode 'interp')."""
        n, T, w, h = self.n_points, self.rows, self.window, self.h
        if T < w:
            raise ValueError(f"a refit needs {w} rows of history (the smoothing window), got {T}")
        x, y = self.point_x[:n].copy(), self.point_y[:n].T.copy()
        tail = [i for i in range(T - h, T) if self.kept(i)]
        if tail:
            rows, xs = self._rows(T - w, T - 1)
            values = (rows.T @ self.P.T) @ self.V[w - h:].T  # (K, h), as the transcription's c_hi @ V[w-h:].T
            x = np.concatenate([x, [int(xs[i - (T - w)]) for i in tail]]).astype(np.int64)
            y = np.concatenate([y, values[:, [i - (T - h) for i in tail]]], axis=1)
        return x, y, self.weight

    def state_dict(self) -> dict[str, Any]:
        n = self.n_points
        return {"rows": int(self.rows), "stride": int(self.stride), "ring_loss": self.ring_loss.copy(),
                "ring_x": self.ring_x.copy(), "point_rows": self.point_rows[:n].copy(),
                "point_x": self.point_x[:n].copy(), "point_y": self.point_y[:n].copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows, self.stride = int(state["rows"]), int(state["stride"])
        self.ring_loss = np.array(state["ring_loss"], dtype=np.float64).reshape(self.window, self.k)
        self.ring_x = np.array(state["ring_x"], dtype=np.int64).reshape(self.window)
        rows = np.asarray(state["point_rows"], dtype=np.int64).reshape(-1)
        n = self.n_points = int(rows.size)
        if n > self.max_points:
            raise ValueError(f"the saved history holds {n} fit points, more than max_fit_points={self.max_points}")
        self.point_rows[:n] = rows
        self.point_x[:n] = np.asarray(state["point_x"], dtype=np.int64).reshape(-1)
        self.point_y[:n] = np.asarray(state["point_y"], dtype=np.float64).reshape(n, self.k)


# ---- a fit in a background thread ----------------------------------------------------------------------------------


class BackgroundFit:
    """``fit(should_stop)`` in a daemon thread; ``result()`` joins it (re-raising its error); ``cancel()`` stops it at
    its next L-BFGS iteration."""

    def __init__(self, fit: Callable[[Callable[[], bool]], np.ndarray]):
        self._cancel = threading.Event()
        self._result: np.ndarray | None = None
        self._error: BaseException | None = None
        self.seconds = 0.0

        def run():
            t0 = time.perf_counter()
            try:
                self._result = fit(self._cancel.is_set)
            except FitCancelled:
                pass
            except BaseException as err:  # handed to the thread that joins
                self._error = err
            self.seconds = time.perf_counter() - t0

        self.thread = threading.Thread(target=run, name="ado-refit", daemon=True)
        self.thread.start()

    def result(self) -> np.ndarray:
        self.thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        self._cancel.set()


# ---- the selector --------------------------------------------------------------------------------------------------


Fitter = Callable[[np.ndarray, np.ndarray, float, Callable[[], bool] | None], np.ndarray]


class ADORule:
    """``AdoSelector`` (ADO 18-242) with the loader glue that touches it (AL 83-137), on per-domain aggregates.

    ``observe(itr, counts, mean_loss, batch_mean, n_sequences)`` is one ``AdaptiveLoader.update`` (AL 111-138):
    the history update (ADO 122-162), a refit at the official cadence (ADO 178-184) and the policy (ADO 89-120);
    it returns the distribution the next batch is drawn from (``curr_dist0``, AL 83-87)."""

    def __init__(self, prior: Sequence[float], ignore_steps: int = 1000, start_step: int = 500,
                 update_interval: int = 1000, window: int = 101, order: int = 3, stride: int = 10,
                 max_points: int = 256, starts: int = 512, fit_lag: int = 0, fitter: Fitter | None = None,
                 horizon: int | None = None):
        """``horizon``: the run's last ``itr``; a background refit whose result would land after it is not started."""
        prior = np.asarray(prior, dtype=np.float64)
        self.k = prior.size
        self.prior = prior / prior.sum()                            # ADO 34 (empirical_dist, AL 62-65)
        self.ignore_steps, self.start_step = int(ignore_steps), int(start_step)  # ADO 36-37
        self.update_interval = int(update_interval)                 # ADO 40
        self.starts, self.fit_lag = int(starts), int(fit_lag)
        self.horizon = None if horizon is None else int(horizon)
        self.fitter: Fitter = fitter or (lambda x, Y, w, stop: fit_scaling_laws(x, Y, w, self.starts, stop))
        self.history = SmoothedLossHistory(self.k, ignore_steps, window, order, stride, max_points)
        self.n_total = 0                                            # sum over rows of task_cnt_TxK (ADO 99-100)
        self.p = self.prior.copy()                                  # ADO 52
        self.p_avg = self.prior.copy()                              # ADO 53
        self.p_history = self.prior.copy()                          # ADO 54
        self.params: np.ndarray | None = None                       # ADO 44 (current_params, K x 3: a, e, alpha)
        self.current = self.prior.copy()                            # AL 79, 83-87 (curr_dist0: the prior until set)
        self.last_dist: np.ndarray | None = None                    # the policy before smoothing (ADO 111), logged
        self.fits = 0                                               # fits applied
        self.pending: dict[str, Any] | None = None                  # a refit started, not yet applied
        self._job: BackgroundFit | None = None
        self.events: list[dict] = []                                # what happened, for the method's reports

    # ---- one step -----------------------------------------------------------------------------------------------

    def observe(self, itr: int, counts: np.ndarray, mean_loss: np.ndarray, batch_mean: float,
                n_sequences: int) -> np.ndarray:
        """``counts``: the domains' shares of the global batch in any unit (sequences, tokens; > 0 means present);
        ``mean_loss``: each present domain's mean loss; ``batch_mean``: the whole batch's mean loss (the first row's
        stand-in for absent domains); ``n_sequences``: sequences in the batch (the fit's x-axis unit)."""
        self._append(np.asarray(counts, dtype=np.float64), np.asarray(mean_loss, dtype=np.float64),
                     float(batch_mean), int(n_sequences))
        if self.pending is not None and itr >= self.pending["apply_at"]:
            self._finish_pending(itr)
        if itr >= self.start_step and itr % self.update_interval == 0:                     # ADO 178
            self._start_fit(itr)
        dist = self.curr_dist(itr)                                                           # AL 126
        if dist is not None:                                                                 # AL 127
            self.current = dist                                                              # AL 137
        return self.current

    def _append(self, counts: np.ndarray, mean_loss: np.ndarray, batch_mean: float, n_sequences: int) -> None:
        """ADO 122-162 (``AdoSelector.update``) on aggregates; the tokens_remaining / compression lines are metrics
        only and left out."""
        self.n_total += n_sequences                                                          # ADO 129-131
        gamma = HISTORY_DECAY                                                                # ADO 135
        count_dist = counts / counts.sum()                                                   # ADO 136
        self.p_history = gamma * self.p_history + (1 - gamma) * count_dist                   # ADO 137
        task_loss_K = np.zeros((self.k,))                                                    # ADO 145
        for i in range(self.k):                                                              # ADO 146
            if counts[i] > 0:                                                                # ADO 148
                task_loss_K[i] = mean_loss[i]                                                # ADO 149
            elif self.history.rows > 0:                                                      # ADO 150
                task_loss_K[i] = self.history.last_row()[i]                                  # ADO 151
            else:
                task_loss_K[i] = batch_mean                                                  # ADO 153
        self.history.push(self.n_total, task_loss_K)                                         # ADO 162

    def curr_dist(self, itr: int) -> np.ndarray | None:
        """ADO 89-120 (``AdoSelector.curr_dist``), verbatim but for ``n`` kept as a count."""
        if itr < self.start_step or self.params is None:                                     # ADO 92
            return None                                                                      # ADO 93
        irred_loss_K = np.exp(self.params[:, 1])                                             # ADO 94
        expnt_K = np.maximum(self.params[:, 2], EXPONENT_FLOOR)                              # ADO 96
        n_K = np.full(self.k, self.n_total, dtype=np.int64)                                  # task_cnt_TxK.sum(0)
        curr_loss_K = scaling_law((self.params[:, 0], self.params[:, 1], self.params[:, 2]), n_K)  # ADO 97-99
        n_seen_K = np.float32(n_K)                                                           # ADO 100
        slope_K = expnt_K * (curr_loss_K - irred_loss_K) / n_seen_K                          # ADO 101
        weighted_slope_K = slope_K                                                           # ADO 104
        weighted_slope_K = weighted_slope_K * self.prior * self.p_history ** CREDIT_EXPONENT  # ADO 105
        dist_K = weighted_slope_K / weighted_slope_K.sum()                                   # ADO 107-109
        dist_K = clip_min_probability(dist_K, MIN_PROBABILITY)                               # ADO 111
        self.last_dist = dist_K
        self.p = POLICY_KEEP * self.p_avg + POLICY_NEW * dist_K                              # ADO 113
        self.p_avg = (1 - 1 / (itr + 1)) * self.p_avg + 1 / (itr + 1) * dist_K              # ADO 114
        return self.p                                                                        # ADO 116-120

    # ---- refits -------------------------------------------------------------------------------------------------

    def _start_fit(self, itr: int) -> None:
        if self.fit_lag and self.horizon is not None and itr + self.fit_lag > self.horizon:
            return  # its parameters would take effect after the run's last step
        x, Y, weight = self.history.fit_points()                                             # ADO 218-224
        if x.size == 0:
            return  # no row at or after ignore_steps yet: nothing to fit (the official code would fit none)
        if self.fit_lag == 0:
            t0 = time.perf_counter()
            params = self.fitter(x, Y, weight, None)                                         # ADO 181
            self._apply(params, itr, started=itr, points=int(x.size), weight=weight,
                        seconds=time.perf_counter() - t0)
            return
        self.pending = {"start": int(itr), "apply_at": int(itr + self.fit_lag), "x": x, "y": Y,
                        "weight": float(weight)}
        self._launch()

    def _launch(self) -> None:
        p = self.pending
        x, Y, w = p["x"].copy(), p["y"].copy(), p["weight"]
        self._job = BackgroundFit(lambda stop: self.fitter(x, Y, w, stop))

    def _finish_pending(self, itr: int) -> None:
        if self._job is None:
            self._launch()
        job, self._job = self._job, None
        params = job.result()
        p, self.pending = self.pending, None
        self._apply(params, itr, started=p["start"], points=int(p["x"].size), weight=p["weight"], seconds=job.seconds)

    def _apply(self, params: np.ndarray, itr: int, **info) -> None:
        """ADO 183-184: the parameters are taken only if they hold no NaN or inf (``check_valid``, ADO 201-208)."""
        params = np.asarray(params, dtype=np.float64).reshape(self.k, 3)
        valid = bool(np.isfinite(np.sum(params)))
        if valid:
            self.params = params
            self.fits += 1
        self.events.append({"itr": int(itr), "valid": valid, "params": params.tolist(), **info})

    def close(self) -> None:
        """Stop a background fit (its result would not be used)."""
        if self._job is not None:
            self._job.cancel()
            self._job = None

    # ---- state --------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Flat: numpy arrays and JSON values (``history_*`` is the bounded history, ``pending_*`` a refit started and
        not yet applied: its points, so that a resumed run fits them again and applies the result at the same step)."""
        p = self.pending
        return {"n_total": int(self.n_total), "p": self.p.copy(), "p_avg": self.p_avg.copy(),
                "p_history": self.p_history.copy(), "current": self.current.copy(),
                "params": None if self.params is None else self.params.copy(), "fits": int(self.fits),
                **{f"history_{k}": v for k, v in self.history.state_dict().items()},
                "pending_start": None if p is None else p["start"],
                "pending_apply_at": None if p is None else p["apply_at"],
                "pending_x": None if p is None else p["x"].copy(), "pending_y": None if p is None else p["y"].copy(),
                "pending_weight": None if p is None else p["weight"]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.close()
        self.n_total = int(state["n_total"])
        for key in ("p", "p_avg", "p_history", "current"):
            setattr(self, key, np.array(state[key], dtype=np.float64).reshape(self.k))
        self.params = None if state["params"] is None else np.array(state["params"], np.float64).reshape(self.k, 3)
        self.fits = int(state["fits"])
        self.history.load_state_dict({k[len("history_"):]: v for k, v in state.items() if k.startswith("history_")})
        self.pending = None
        if state.get("pending_start") is not None:
            self.pending = {"start": int(state["pending_start"]), "apply_at": int(state["pending_apply_at"]),
                            "x": np.array(state["pending_x"], dtype=np.int64).reshape(-1),
                            "y": np.array(state["pending_y"], dtype=np.float64).reshape(self.k, -1),
                            "weight": float(state["pending_weight"])}
            self._launch()  # the same points: the same parameters, applied at the same step
