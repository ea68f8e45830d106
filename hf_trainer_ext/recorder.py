"""Per-block losses of the training forward pass, kept on device until a phase boundary or a checkpoint."""

from __future__ import annotations

import math

import numpy as np
import torch


class BlockLossRecorder:
    """Collects (block_id, domain_id, step, loss) of every trained block; gathers them across processes on demand.

    ``add`` only appends device tensors (no host sync on the training path). Per-domain running sums feed the
    perplexity logger between logging steps.
    """

    def __init__(self, n_domains: int):
        self.n_domains = n_domains
        self._parts: list[tuple[torch.Tensor, ...]] = []
        self._dom_sum: torch.Tensor | None = None
        self._dom_cnt: torch.Tensor | None = None

    def add(self, block_id: torch.Tensor, domain_id: torch.Tensor, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach().float()
        self._parts.append((block_id.detach(), domain_id.detach(), torch.full_like(block_id, step), loss))
        if self._dom_sum is None:
            self._dom_sum = torch.zeros(self.n_domains, dtype=torch.float64, device=loss.device)
            self._dom_cnt = torch.zeros(self.n_domains, dtype=torch.float64, device=loss.device)
        real = (block_id >= 0) & torch.isfinite(loss)
        dom = domain_id.clamp(0, self.n_domains - 1)
        self._dom_sum.index_add_(0, dom, torch.where(real, loss, 0.0).double())
        self._dom_cnt.index_add_(0, dom, real.double())

    def load(self, records: dict) -> None:
        """Records restored from a checkpoint (give them to one process only, or they are gathered twice)."""
        t = {k: torch.as_tensor(np.asarray(v)) for k, v in records.items()}
        self._parts.append((t["block_id"].long(), t["domain_id"].long(), t["step"].long(), t["loss"].float()))

    def local_records(self) -> tuple[torch.Tensor, ...]:
        if not self._parts:
            z = torch.zeros(0, dtype=torch.long)
            return z, z, z, torch.zeros(0)
        dev = self._parts[-1][0].device
        return tuple(torch.cat([p[i].to(dev) for p in self._parts]) for i in range(4))

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
        self._parts.clear()

    def domain_losses(self, accelerator) -> dict[int, float]:
        """Mean training loss per domain since the last call, over all processes (collective)."""
        if self._dom_sum is None:
            s = torch.zeros(self.n_domains, dtype=torch.float64, device=accelerator.device if accelerator else "cpu")
            c = s.clone()
        else:
            s, c = self._dom_sum.clone(), self._dom_cnt.clone()
            self._dom_sum.zero_()
            self._dom_cnt.zero_()
        if accelerator is not None and accelerator.num_processes > 1:
            s, c = accelerator.reduce(s.to(accelerator.device), "sum"), accelerator.reduce(c.to(accelerator.device), "sum")
        s, c = s.cpu().tolist(), c.cpu().tolist()
        return {d: s[d] / c[d] for d in range(self.n_domains) if c[d] > 0}


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")
