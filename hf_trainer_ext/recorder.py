"""Per-block losses of the training forward pass, kept on device until a phase boundary or a checkpoint."""

from __future__ import annotations

import math

import numpy as np
import torch


class BlockLossRecorder:
    """Collects (block_id, domain_id, step, loss) of every trained block; gathers them across processes on demand.

    Records go into preallocated buffers by slice assignment: no tensor is created per step that outlives the step.
    (Keeping small per-step tensors alive fragments the heap around the large logits buffer that is freed and
    re-allocated every step, which made each step fault in a fresh ~200 MB on CPU.) With ``keep_records=False``
    (no plan consumes them) only the per-domain running sums for the perplexity logger are kept.
    """

    def __init__(self, n_domains: int, keep_records: bool = True):
        self.n_domains = n_domains
        self.keep_records = keep_records
        self._cols: list[torch.Tensor] | None = None  # block_id, domain_id, step (int64), loss (float32)
        self._n = 0
        self._dom_sum: torch.Tensor | None = None
        self._dom_cnt: torch.Tensor | None = None
        self._dom_bad: torch.Tensor | None = None

    def reserve(self, capacity: int, device: torch.device | str = "cpu") -> None:
        """Make room for ``capacity`` records (call it once per run, before training allocates its big buffers)."""
        if self._cols is not None and self._cols[0].numel() >= capacity:
            return
        dev = self._cols[0].device if self._cols is not None else torch.device(device)
        new = [torch.empty(capacity, dtype=torch.int64, device=dev) for _ in range(3)]
        new.append(torch.empty(capacity, dtype=torch.float32, device=dev))
        if self._cols is not None and self._n:
            for a, b in zip(new, self._cols):
                a[: self._n] = b[: self._n]
        self._cols = new

    def reserve_epoch(self, max_epoch_steps: int, global_batch: int, world_size: int, device) -> None:
        """Room for the longest epoch's records of this process (its share of every global batch, plus one)."""
        self.reserve(max_epoch_steps * global_batch // max(world_size, 1) + global_batch, device)

    def _append(self, block_id, domain_id, step, loss) -> None:
        k = block_id.numel()
        if self._cols is None or self._n + k > self._cols[0].numel():
            cap = 0 if self._cols is None else self._cols[0].numel()
            self.reserve(max(self._n + k, 2 * cap, 4096), block_id.device)
        end = self._n + k
        self._cols[0][self._n : end] = block_id
        self._cols[1][self._n : end] = domain_id
        self._cols[2][self._n : end] = step
        self._cols[3][self._n : end] = loss
        self._n = end

    def add(self, block_id: torch.Tensor, domain_id: torch.Tensor, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach().float()
        if self._dom_sum is None:
            self._dom_sum = torch.zeros(self.n_domains, dtype=torch.float64, device=loss.device)
            self._dom_cnt = torch.zeros(self.n_domains, dtype=torch.float64, device=loss.device)
            self._dom_bad = torch.zeros(self.n_domains, dtype=torch.float64, device=loss.device)
        finite = torch.isfinite(loss)
        real = (block_id >= 0) & finite
        dom = domain_id.clamp(0, self.n_domains - 1)
        self._dom_sum.index_add_(0, dom, torch.where(real, loss, 0.0).double())
        self._dom_cnt.index_add_(0, dom, real.double())
        self._dom_bad.index_add_(0, dom, ((block_id >= 0) & ~finite).double())
        if self.keep_records:
            self._append(block_id.detach(), domain_id.detach(), step, loss)

    def load(self, records: dict) -> None:
        """Records restored from a checkpoint (give them to one process only, or they are gathered twice)."""
        t = [torch.as_tensor(np.asarray(records[k])) for k in ("block_id", "domain_id", "step", "loss")]
        if len(t[0]):
            self._append(t[0].long(), t[1].long(), t[2].long(), t[3].float())

    def local_records(self) -> tuple[torch.Tensor, ...]:
        if self._cols is None:
            z = torch.zeros(0, dtype=torch.long)
            return z, z, z, torch.zeros(0)
        return tuple(c[: self._n] for c in self._cols)

    def gather(self, accelerator) -> dict[str, np.ndarray]:
        """All processes' records (collective: every process must call it), real blocks only, as numpy."""
        cols = self.local_records()
        if accelerator is not None and accelerator.num_processes > 1:
            dev = accelerator.device
            cols = [accelerator.gather(accelerator.pad_across_processes(c.to(dev), dim=0, pad_index=-1)) for c in cols]
        block_id, domain_id, step, loss = (c.cpu().numpy() for c in cols)
        keep = block_id >= 0
        return {
            "block_id": block_id[keep],
            "domain_id": domain_id[keep].astype(np.int32),
            "step": step[keep],
            "loss": loss[keep].astype(np.float32),
        }

    def clear(self) -> None:
        self._n = 0  # the buffers stay for the next epoch

    def domain_losses(self, accelerator) -> dict[int, float]:
        """Mean training loss per domain since the last call, over all processes (collective)."""
        return self.window(accelerator)["domains"]

    def window(self, accelerator) -> dict:
        """Since the last call, over all processes (collective): each domain's mean loss over its finite block losses
        (``domains``), and the counts of finite and non-finite block losses with the finite ones' sum (the
        divergence check)."""
        k = self.n_domains
        if self._dom_sum is None:
            dev = accelerator.device if accelerator is not None else "cpu"
            stats = torch.zeros(3, k, dtype=torch.float64, device=dev)
        else:
            stats = torch.stack([self._dom_sum, self._dom_cnt, self._dom_bad])
            self._dom_sum.zero_()
            self._dom_cnt.zero_()
            self._dom_bad.zero_()
        if accelerator is not None and accelerator.num_processes > 1:
            stats = accelerator.reduce(stats.to(accelerator.device), "sum")
        s, c, bad = stats.cpu().tolist()
        return {"domains": {d: s[d] / c[d] for d in range(k) if c[d] > 0}, "finite": sum(c), "nonfinite": sum(bad),
                "loss_sum": sum(s)}

    def perplexity_window(self, accelerator, names: list[str]) -> tuple[dict, tuple[int, int, float]]:
        """``window`` as ``train_ppl/<domain>`` logs, and (blocks, non-finite blocks, mean finite loss) for the
        divergence check (collective)."""
        w = self.window(accelerator)
        logs = {f"train_ppl/{names[d] if d < len(names) else d}": perplexity(v) for d, v in w["domains"].items()}
        mean = w["loss_sum"] / w["finite"] if w["finite"] else float("nan")
        return logs, (int(w["finite"] + w["nonfinite"]), int(w["nonfinite"]), mean)


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


class StepStatsAccumulator:
    """Per-domain sums over one optimizer step's micro-batches, kept on device: tokens counted in the loss, their
    summed loss and (with a reference) their summed per-token clipped excess ``max(l - l_ref, 0)``. ``reduce`` sums
    them over all processes in one collective, so every process sees the global batch's statistics."""

    def __init__(self, n_domains: int, device, excess: bool):
        self.n_domains = n_domains
        self.excess = excess
        self._sums = torch.zeros(3 if excess else 2, n_domains, dtype=torch.float64, device=device)

    def add(self, domain_id: torch.Tensor, tok: torch.Tensor, valid: torch.Tensor, ref: torch.Tensor | None) -> None:
        dom = domain_id.to(tok.device).clamp(0, self.n_domains - 1)
        tok = tok.detach()
        self._sums[0].index_add_(0, dom, valid.sum(-1).double())
        self._sums[1].index_add_(0, dom, tok.sum(-1).double())
        if self.excess:
            excess = torch.clamp(tok - ref.to(tok.device), min=0.0) * valid
            self._sums[2].index_add_(0, dom, excess.sum(-1).double())

    def reduce(self, accelerator, step: int):
        from curricula.methods.seam import StepStats

        s = self._sums
        if accelerator is not None and accelerator.num_processes > 1:
            s = accelerator.reduce(s.to(accelerator.device), "sum")
        s = s.cpu().numpy().copy()
        self._sums.zero_()
        return StepStats(step=step, tokens=s[0], loss_sum=s[1], excess_sum=s[2] if self.excess else None)


def domain_perplexities(records: dict, names: list[str], prefix: str = "eval") -> dict:
    """exp(mean token loss) per domain (blocks have equal length, so the mean of block means is the token mean),
    its uniform average over domains and its worst case."""
    loss, dom = records["loss"], records["domain_id"]
    ok = np.isfinite(loss)
    out, ppls = {}, []
    for d, name in enumerate(names):
        sel = ok & (dom == d)
        if sel.any():
            ppl = float(np.exp(loss[sel].mean()))
            out[f"{prefix}_ppl/{name}"] = ppl
            ppls.append(ppl)
    if ppls:
        out[f"{prefix}_ppl_avg"] = float(np.mean(ppls))
        out[f"{prefix}_ppl_worst"] = float(np.max(ppls))
    return out
