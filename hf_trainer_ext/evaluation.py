"""Zero-shot tasks scored by log-likelihood with any causal LM, through the ``evaluate`` metric modules.

Multiple choice: the summed log-probability of each continuation given the context (the choice is tokenized as
part of ``context + choice``, so BPE merges across the boundary are what the model would see); accuracy picks the
highest, ``accuracy_norm`` the highest per character (lm-eval's ``acc_norm``). Cloze (LAMBADA-style): the target
word counts as predicted when every one of its tokens is the model's greedy choice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from curricula.evaluation.tasks import TaskBuildError


def _split_ids(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    whole = tok.encode(context + continuation)
    ctx = tok.encode(context)
    if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
        return ctx, whole[len(ctx) :]
    return ctx, tok.encode(continuation)  # the boundary merged: score the continuation on its own tokens


@torch.no_grad()
def continuation_logprobs(model, pairs: list[tuple[list[int], list[int]]], batch_size: int = 16,
                          pad_id: int = 0) -> list[tuple[float, bool]]:
    """(sum of log p(continuation | context), whether every continuation token is the greedy one) per pair."""
    device = next(model.parameters()).device
    max_len = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 1024)
    out = []
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(pairs), batch_size), desc="scoring", unit="batch", leave=False):
        chunk = pairs[start : start + batch_size]
        seqs = [(ctx + cont)[-max_len:] for ctx, cont in chunk]
        n_cont = [min(len(cont), len(s) - 1) for (_, cont), s in zip(chunk, seqs)]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
        for i, s in enumerate(seqs):
            k = n_cont[i]
            positions = torch.arange(len(s) - k - 1, len(s) - 1, device=logp.device)
            targets = ids[i, len(s) - k : len(s)].to(logp.device)
            lp = logp[i, positions]
            out.append((float(lp.gather(-1, targets[:, None]).sum()), bool((lp.argmax(-1) == targets).all())))
    model.train(was_training)
    return out


def score_task(model, tokenizer, examples: Sequence, batch_size: int = 16) -> dict:
    """Run one task's examples through the model and its metric module; returns the metric's result + ``n``."""
    from curricula.metrics import load_metric

    eos = getattr(tokenizer, "eos_id", 0)
    if not examples:
        raise TaskBuildError("the task has no examples")
    kind = examples[0].kind
    if kind == "multiple_choice":
        pairs, owners = [], []
        for i, ex in enumerate(examples):
            for choice in ex.choices:
                pairs.append(_split_ids(tokenizer, ex.context, choice))
                owners.append(i)
        scores = continuation_logprobs(model, pairs, batch_size, pad_id=eos)
        metric = load_metric("multiple_choice")
        per_q: list[list[float]] = [[] for _ in examples]
        for (lp, _), i in zip(scores, owners):
            per_q[i].append(lp)
        result = metric.compute(choice_logprobs=per_q, choice_lengths=[[max(1, len(c)) for c in ex.choices] for ex in examples],
                                answer=[ex.answer for ex in examples])
    elif kind == "cloze":
        pairs = [_split_ids(tokenizer, ex.context, ex.target) for ex in examples]
        scores = continuation_logprobs(model, pairs, batch_size, pad_id=eos)
        metric = load_metric("cloze")
        preds = [ex.target if greedy else "\u2205" for ex, (_, greedy) in zip(examples, scores)]
        result = metric.compute(predictions=preds, references=[ex.target for ex in examples])
        result["mean_target_logprob"] = float(np.mean([lp for lp, _ in scores]))
    else:
        raise TaskBuildError(f"unknown task kind {kind!r}")
    return {**result, "n": len(examples), "kind": kind}


def evaluate_model(model_dir: str | Path, task_names: Sequence[str], *, batch_size: int = 16, model=None) -> dict:
    """Score a model folder (with its tokenizer) on registered tasks; ``model`` overrides the folder's weights."""
    from transformers import AutoModelForCausalLM

    from curricula.data.tokenizers import load_tokenizer
    from curricula.evaluation.tasks import get_task

    tokenizer = load_tokenizer(model_dir)
    model = model if model is not None else AutoModelForCausalLM.from_pretrained(model_dir)
    results = {}
    for name in task_names:
        task = get_task(name)
        results[name] = score_task(model, tokenizer, task.load(), batch_size)
    return {"model": str(model_dir), "tokenizer": tokenizer.identity.to_dict(), "tasks": results}


def write_results(results: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    return path
