"""DoReMi's proxy run (Xie et al. 2023, Algorithm 1) on ``CurriculumTrainer``, for any ``AutoModelForCausalLM``.

Each optimizer step:
  1. per token, the excess loss ``max(l_proxy - l_ref, 0)`` (reference losses from the cache, or from a live
     reference forward), summed per domain over the step's micro-batches;
  2. after the step, the per-domain sums and token counts are all-reduced, so every process runs the identical
     update ``GroupDROWeights.update`` (exponentiated gradient on the per-domain mean excess, smoothed with uniform);
  3. the proxy is trained on the alpha-weighted loss: token weight ``alpha_d / p_d`` (``p`` the sampling weights,
     so non-uniform sampling is importance-corrected), normalised exactly like Trainer's loss.
With gradient accumulation the alpha of a step is known only after its last micro-batch, so the loss of step t uses
the alpha after step t-1 (a one-step delay; the official code's micro-steps likewise use a stale alpha).

The weights are curriculum state: identical on every process, saved in every checkpoint (``doremi.json``) and
restored on resume. Outputs in ``OUTPUT_DIR/doremi/``: ``domain_weights.json`` (the average of alpha over all steps,
stamped with the tokenizer identity), ``weights_history.parquet`` and ``domain_weights.png``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from curricula.curriculum.doremi import DoReMiConfig, GroupDROWeights, weights_json
from hf_trainer_ext.data import per_domain_subset
from hf_trainer_ext.losses import causal_lm_token_losses
from hf_trainer_ext.reference import ReferenceLosses, load_model_checked, model_for_data
from hf_trainer_ext.trainer import CurriculumTrainer

OUT_DIR = "doremi"
STATE_FILE = "doremi.json"


class DoReMiProxyTrainer(CurriculumTrainer):
    def __init__(self, *args, reference_losses: str | Path | None = None, reference_model=None,
                 eta: float = 1.0, smoothing: float = 1e-3, tokenizer_identity: dict | None = None, **kwargs):
        if (reference_losses is None) == (reference_model is None):
            raise ValueError("give exactly one of reference_losses (a cache made by score_reference) or reference_model")
        if not tokenizer_identity or "vocab_sha256" not in tokenizer_identity:
            raise ValueError("pass tokenizer_identity=read_meta(packed)['tokenizer']: DoReMi weights are specific to "
                             "a tokenizer, and the weights file is stamped with it")
        super().__init__(*args, **kwargs)
        if not self.block_logging:
            raise ValueError("DoReMi needs packed training data with block_id and domain_id (curricula pack)")
        self.tokenizer_identity = tokenizer_identity
        k = len(self.domain_names)
        self.sampling = self.mixture_weights if self.mixture_weights is not None else np.full(k, 1.0 / k)
        self.dro = GroupDROWeights(k, DoReMiConfig(eta=eta, smoothing=smoothing))
        self.reference_model = None
        if isinstance(reference_model, (str, Path)):
            reference_model = load_model_checked(reference_model, tokenizer_identity, what="the reference model")
        if reference_model is not None:
            self.reference_model = reference_model.to(self.args.device).eval().requires_grad_(False)
        else:
            n, block_size = len(self.train_dataset), len(self.train_dataset.ds[0]["input_ids"])
            self.train_dataset.extras["ref_loss"] = ReferenceLosses(reference_losses, n, block_size, tokenizer_identity)
        self._excess_sum = torch.zeros(k, dtype=torch.float64, device=self.args.device)
        self._count = torch.zeros(k, dtype=torch.float64, device=self.args.device)
        self._token_weight = self._weights_tensor()
        self.history: list[dict] = []
        self.add_callback(DoReMiCallback(self))

    def _weights_tensor(self) -> torch.Tensor:
        return torch.as_tensor(self.dro.weights / self.sampling, dtype=torch.float32, device=self.args.device)

    # ---- loss ---------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation: the plain loss, per-domain perplexities recorded by the base class
            inputs.pop("ref_loss", None)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        block_id, domain_id = inputs.pop("block_id"), inputs.pop("domain_id")
        ref = inputs.pop("ref_loss", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        tok, valid = causal_lm_token_losses(outputs.logits, labels)
        if ref is None:
            with torch.no_grad():
                ref, _ = causal_lm_token_losses(self.reference_model(**inputs).logits, labels)
        excess = torch.clamp(tok.detach() - ref.to(tok.device), min=0.0) * valid
        dom = domain_id.to(tok.device)
        self._excess_sum.index_add_(0, dom, excess.sum(-1).double())
        self._count.index_add_(0, dom, valid.sum(-1).double())
        loss = self.normalise_loss((tok.sum(-1) * self._token_weight[dom]).sum(), valid, num_items_in_batch)
        self._record(model, block_id, domain_id, tok, valid)
        return (loss, outputs) if return_outputs else loss

    # ---- the weight update --------------------------------------------------------------------------------------

    def update_domain_weights(self) -> None:
        """After each optimizer step, on every process: global per-domain excess → identical new alpha."""
        s, c = self._excess_sum, self._count
        if self.accelerator.num_processes > 1:
            s, c = self.accelerator.reduce(s, "sum"), self.accelerator.reduce(c, "sum")
        alpha = self.dro.update(s.cpu().numpy(), c.cpu().numpy())
        self._excess_sum.zero_()
        self._count.zero_()
        self._token_weight = self._weights_tensor()
        self.history.append({"step": self.state.global_step, "weights": alpha.tolist(),
                             "average": self.dro.average.tolist(), "excess": self.dro.excess.tolist()})

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        ckpt = resume_from_checkpoint
        if ckpt is True:
            from transformers.trainer_utils import get_last_checkpoint

            ckpt = get_last_checkpoint(self.args.output_dir)
        if ckpt and (Path(ckpt) / STATE_FILE).is_file():
            saved = json.loads((Path(ckpt) / STATE_FILE).read_text())
            self.dro.load_state_dict(saved["dro"])
            self.history = saved["history"]
            self._token_weight = self._weights_tensor()
        elif ckpt:
            raise ValueError(f"{ckpt} has no {STATE_FILE}: it was not saved by a DoReMi proxy run")
        out = super().train(resume_from_checkpoint=ckpt, trial=trial, **kwargs)
        if self.args.should_save:
            self.write_outputs()
        return out

    def save_doremi_state(self, checkpoint: str) -> None:
        if self.args.should_save:
            path = Path(checkpoint) / STATE_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(STATE_FILE + ".tmp")
            tmp.write_text(json.dumps({"dro": self.dro.state_dict(), "history": self.history}))
            os.replace(tmp, path)

    def write_outputs(self) -> Path:
        out = Path(self.args.output_dir) / OUT_DIR
        out.mkdir(parents=True, exist_ok=True)
        extra = {"steps": self.dro.steps, "eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing,
                 "sampling_weights": self.sampling.tolist(), "final_weights": self.dro.weights.tolist(),
                 "reference": "live" if self.reference_model is not None else "cached"}
        doc = weights_json(self.dro.average, self.domain_names, self.tokenizer_identity, extra)
        (out / "domain_weights.json").write_text(json.dumps(doc, indent=2))
        if self.history:
            k = len(self.domain_names)
            cols = {"step": [h["step"] for h in self.history]}
            for key in ("weights", "average", "excess"):
                for d in range(k):
                    cols[f"{key}/{self.domain_names[d]}"] = [h[key][d] for h in self.history]
            pq.write_table(pa.table(cols), out / "weights_history.parquet")
            plot_weights(self.history, self.domain_names, out / "domain_weights.png")
        return out / "domain_weights.json"


class DoReMiCallback(TrainerCallback):
    def __init__(self, trainer: DoReMiProxyTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.update_domain_weights()
        if control.should_log:
            t = self.trainer
            t.log_extra({f"domain_weight/{n}": float(w) for n, w in zip(t.domain_names, t.dro.weights)})

    def on_save(self, args, state, control, **kwargs):
        self.trainer.save_doremi_state(os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"))


def plot_weights(history: list[dict], names: list[str], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    fig = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for d, name in enumerate(names):
        (line,) = ax1.plot(steps, [h["weights"][d] for h in history], lw=1, label=name)
        ax2.plot(steps, [h["average"][d] for h in history], lw=1.5, color=line.get_color())
    ax1.set_title("domain weights alpha per step")
    ax2.set_title("running average (DoReMi's output)")
    for ax in (ax1, ax2):
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    ax1.set_ylabel("weight")
    ax1.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


# ---------------------------------------------------------------------------------------------------------------
# The whole pipeline: reference → (cached losses) → proxy → averaged weights, iterated; then the main model.


@dataclass
class DoReMiRecipe:
    """``curricula/recipes/doremi.yaml``. ``training`` holds TrainingArguments shared by every run."""

    domains: list[str] | None = None  # the domains the data must have (all of the packed data's if None)
    baseline_weights: str | list = "uniform"  # uniform | token_proportional | a list in domain order
    rounds: int = 1
    stop_l1: float = 0.0  # stop iterating when the L1 change of the weights falls below this
    eta: float = 1.0
    smoothing: float = 1e-3
    reference: str = "cached"  # cached | live
    reference_steps: int = 200
    proxy_steps: int = 200
    main_steps: int = 200
    run_main: bool = True
    model: dict = field(default_factory=lambda: {"n_layer": 2, "n_embd": 128, "n_head": 4})
    training: dict = field(default_factory=dict)
    max_eval_blocks: int = 512

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "DoReMiRecipe":
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        data.pop("method", None)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; valid keys: {[f.name for f in fields(cls)]}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def baseline_weights(spec, meta: dict) -> np.ndarray:
    from curricula.curriculum.mixing import check_weights

    names = meta["domain_names"]
    if spec == "uniform":
        return np.full(len(names), 1.0 / len(names))
    if spec == "token_proportional":
        tokens = np.array([meta["splits"]["train"]["domains"][n]["tokens"] for n in names], dtype=np.float64)
        return tokens / tokens.sum()
    return check_weights(np.asarray(spec, dtype=np.float64), names)


def _args(recipe: DoReMiRecipe, out: Path, steps: int, **kw):
    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    base = {"per_device_train_batch_size": 16, "learning_rate": 2e-3, "lr_scheduler_type": "cosine",
            "warmup_steps": 0.05, "weight_decay": 0.1, "logging_steps": 25, "report_to": "none",
            "save_strategy": "no", "eval_strategy": "no", "seed": 0, "disable_tqdm": False}
    base.update(recipe.training)
    base.update(kw)
    return CurriculumTrainingArguments(output_dir=str(out), max_steps=steps, **base)


def run_doremi(recipe: DoReMiRecipe, packed: str | Path, out_dir: str | Path) -> dict:
    """Iterated DoReMi on packed data; returns (and writes to ``out_dir/doremi.json``) the weights of every round."""
    from curricula.curriculum.doremi import l1_change
    from curricula.data.pack import load_blocks, read_meta
    from hf_trainer_ext.reference import score_reference

    packed, out_dir = Path(packed), Path(out_dir)
    meta = read_meta(packed)
    names = meta["domain_names"]
    if recipe.domains is not None:
        missing = [d for d in recipe.domains if d not in names]
        if missing:
            raise ValueError(f"the recipe's domain(s) {missing} are not in {packed} (it has {names}); "
                             "fix the recipe's domains or pack a corpus that has them")
    if recipe.reference not in ("cached", "live"):
        raise ValueError(f"reference={recipe.reference!r}: use 'cached' (score once) or 'live' (a forward per step)")
    train = load_blocks(packed, "train")
    evaluation = None
    if "validation" in meta["splits"]:
        evaluation = per_domain_subset(load_blocks(packed, "validation"), recipe.max_eval_blocks)
    identity = meta["tokenizer"]
    weights = baseline_weights(recipe.baseline_weights, meta)
    rounds = []
    seed = 10_000 * int(recipe.training.get("seed", 0))  # model inits follow the run's seed (distinct per role)
    for r in range(recipe.rounds):
        rd = out_dir / f"round{r}"
        ref_model = model_for_data(meta, seed=seed + r, **recipe.model)
        ref = CurriculumTrainer(model=ref_model, args=_args(recipe, rd / "reference", recipe.reference_steps,
                                                               domain_weights=json.dumps(weights.tolist())),
                                train_dataset=train, eval_dataset=evaluation, domain_names=names)
        ref.train()
        ref_eval = ref.evaluate() if evaluation is not None else {}
        kw = {}
        if recipe.reference == "cached":
            score_reference(ref_model, train, rd / "reference_losses", tokenizer_identity=identity, model_name=f"round{r}/reference")
            kw["reference_losses"] = rd / "reference_losses"
        else:
            kw["reference_model"] = ref_model
        proxy = DoReMiProxyTrainer(model=model_for_data(meta, seed=seed + 1000 + r, **recipe.model),
                                   args=_args(recipe, rd / "proxy", recipe.proxy_steps, domain_weights="uniform"),
                                   train_dataset=train, domain_names=names, eta=recipe.eta, smoothing=recipe.smoothing,
                                   tokenizer_identity=identity, **kw)
        proxy.train()
        new = proxy.dro.average.copy()
        change = l1_change(new, weights)
        rounds.append({"round": r, "reference_weights": weights.tolist(), "weights": new.tolist(), "l1_change": change,
                       "reference_eval": {k: v for k, v in ref_eval.items() if "ppl" in k or k == "eval_loss"}})
        weights = new
        if change < recipe.stop_l1:
            break
    result = {"domains": names, "tokenizer": identity, "rounds": rounds, "final_weights": weights.tolist()}
    if recipe.run_main:
        main = CurriculumTrainer(model=model_for_data(meta, seed=seed + 2000, **recipe.model),
                                 args=_args(recipe, out_dir / "main", recipe.main_steps,
                                            domain_weights=json.dumps(weights.tolist())),
                                 train_dataset=train, eval_dataset=evaluation, domain_names=names)
        main.train()
        main.save_model()
        if evaluation is not None:
            result["main_eval"] = {k: v for k, v in main.evaluate().items() if "ppl" in k or k == "eval_loss"}
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = weights_json(weights, names, identity, {"rounds": rounds, "recipe": asdict(recipe)})
    (out_dir / "domain_weights.json").write_text(json.dumps(doc, indent=2))
    (out_dir / "doremi.json").write_text(json.dumps(result, indent=2))
    plot_rounds(rounds, names, out_dir / "domain_weights_by_round.png")
    return result


def plot_rounds(rounds: list[dict], names: list[str], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 1.1 * len(names)), 4))
    FigureCanvasAgg(fig)
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
