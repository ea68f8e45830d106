"""Per-domain validation loss measured mid-training, for methods that learn from it (``needs = {"eval_stats"}``:
Aioli estimates its mixing law from the change of every domain's held-out loss over short training segments).

Each process scores its share of the held-out blocks (rows ``rank::world``) with the model as it is (eval mode, no
gradient, the RNG untouched), and the per-domain sums are all-reduced, so every process hands the curriculum the same
``EvalStats``. The blocks are read and collated once, at the first measurement.
"""

from __future__ import annotations

import numpy as np
import torch

from curricula.errors import ConfigError
from curricula.methods.seam import EvalStats
from hf_trainer_ext.losses import causal_lm_token_losses


class DomainLossProbe:
    def __init__(self, dataset, n_domains: int, batch_size: int, accelerator, max_blocks: int | None = None):
        if dataset is None or "domain_id" not in (getattr(dataset, "column_names", None) or ()):
            raise ConfigError("this method learns from per-domain validation losses: pass eval_dataset (packed "
                              "blocks with domain_id, e.g. PackedData.validation(n)) or mixing_eval_dataset=")
        self.dataset, self.n_domains, self.batch_size = dataset, n_domains, batch_size
        self.accelerator, self.max_blocks = accelerator, max_blocks
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.blocks_scored = 0  # over every measurement and process: the forward-only compute it cost

    def _load(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset.with_format("numpy")
        n = len(ds) if self.max_blocks is None else min(len(ds), self.max_blocks)
        rows = np.arange(self.accelerator.process_index, n, self.accelerator.num_processes)
        out = []
        for lo in range(0, rows.size, self.batch_size):
            part = ds[rows[lo: lo + self.batch_size].tolist()]
            out.append((torch.as_tensor(np.asarray(part["input_ids"]), dtype=torch.long),
                        torch.as_tensor(np.asarray(part["domain_id"]), dtype=torch.long)))
        return out

    @classmethod
    def for_trainer(cls, trainer, dataset=None) -> "DomainLossProbe | None":
        """The probe of a trainer whose method needs one (on ``dataset``, else its ``eval_dataset``), else None."""
        cur = trainer.curriculum
        if cur is None or "eval_stats" not in cur.needs:
            return None
        return cls(dataset if dataset is not None else trainer.eval_dataset, len(trainer.domain_names),
                   trainer.args.per_device_eval_batch_size, trainer.accelerator,
                   getattr(trainer.args, "mixing_eval_blocks", None))

    @torch.no_grad()
    def measure(self, model, step: int) -> EvalStats:
        """Collective: every process must call it."""
        if self._batches is None:
            self._batches = self._load()
        device = self.accelerator.device
        sums = torch.zeros(2, self.n_domains, dtype=torch.float64, device=device)
        was_training = model.training
        model.eval()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                for ids, dom in self._batches:
                    ids, dom = ids.to(device), dom.to(device).clamp(0, self.n_domains - 1)
                    tok, valid = causal_lm_token_losses(model(input_ids=ids).logits, ids)
                    sums[0].index_add_(0, dom, valid.sum(-1).double())
                    sums[1].index_add_(0, dom, tok.sum(-1).double())
        finally:
            model.train(was_training)
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.reduce(sums, "sum")
        s = sums.cpu().numpy()
        self.blocks_scored += min(len(self.dataset), self.max_blocks or len(self.dataset))
        return EvalStats(step=step, tokens=s[0].copy(), loss_sum=s[1].copy())
