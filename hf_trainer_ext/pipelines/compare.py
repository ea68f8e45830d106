"""``curricula compare``: several methods on the user's packed data at one fixed budget, side by side.

Every method trains the same model from the same initialisation (per seed) for the same total compute: ``--steps``
optimizer steps of the same global batch, where the runs a method needs before its main run count too (DoReMi's
reference and proxy, one-run DoReMi's reference) and so do its forward-only passes (a reference's scoring of every
block, Aioli's held-out measurements), at 1/3 of a training step per block (a forward is about a third of a forward +
backward). Each (method, seed) is a pipeline run under ``OUT/runs/<method>/seed<k>``: a finished run is reused, an
interrupted one resumed, so the command can run in parts. The report (``OUT/report.md``, ``report.json``, plots) is
written from the finished runs by ``curricula.report.compare``.

Methods (names as in ``--methods``): ``uniform`` and ``token_proportional`` (fixed mixtures), ``doremi`` (reference →
Group-DRO proxy → main, one round), ``doremi_online`` (reference → one main run learning its weights), any online
mixer registered as a method (``odm``, ``ado``, ``aioli``, ...), and ``lfr`` (the LFR plan over the best mixture found
among the others, ``uniform`` if none beats it; its plan is sized to the budget).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from curricula.data.packed import PackedData, per_domain_subset
from curricula.errors import ConfigError
from curricula.mixing.weights import resolve_weights
from hf_trainer_ext.pipelines.runs import PipelineRun, data_identity, eval_curve

from hf_trainer_ext.pipelines.compare_config import (DEFAULT_METHODS, FIXED, FORWARD_COST, PIPELINED,  # noqa: F401
                                                     CompareConfig, budget_params)


def _check_methods(methods: list[str]) -> None:
    from curricula.methods import METHODS, lookup

    for m in methods:
        if m in FIXED or m in PIPELINED or m == "lfr":
            continue
        cls = lookup(m)  # names the closest method when misspelt
        if cls.method not in METHODS or cls.method in ("lfr", "group_dro", "replay"):
            raise ConfigError(f"compare: method {m!r} is not an online mixture of one run; compare runs fixed "
                              f"mixtures ({', '.join(FIXED)}), {', '.join(PIPELINED)}, lfr and online mixers")


def _init_seed(seed: int) -> int:
    """Every method's main model starts from this init (DoReMi's pipeline seeds its main model the same way)."""
    return 10_000 * seed + 2000


def _args(cfg: CompareConfig, run: PipelineRun, seed: int, **kw):
    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    base = {"per_device_train_batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
            "lr_scheduler_type": "cosine", "warmup_steps": 0.05, "weight_decay": 0.1, "logging_steps": 25,
            "report_to": "none", "eval_strategy": "steps", "eval_steps": cfg.eval_every, "seed": seed,
            "disable_tqdm": True, **run.training_args(), **cfg.training}
    base.update(kw)
    base.setdefault("max_steps", run.steps)
    return CurriculumTrainingArguments(output_dir=str(run.out), **base)


def _final(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if "ppl" in k or k == "eval_loss"}


def _run_single(cfg, data, method: str, seed: int, out: Path, curriculum, weights_hint=None, steps=None,
                **extra) -> dict:
    """One run of a one-run method (a fixed mixture, an online mixer, LFR) for the budget; its result."""
    from hf_trainer_ext.reference import model_for_data
    from hf_trainer_ext.trainer import CurriculumTrainer

    steps = (steps or cfg.steps) if not curriculum.sets_steps else None
    fingerprint = {"method": method, "data": data_identity(data.meta), "config": curriculum.to_dict(),
                   "compare": _fingerprint(cfg), "seed": seed,
                   "blocks": len(extra["train_dataset"]) if "train_dataset" in extra else None}
    run = PipelineRun(out, fingerprint, steps or cfg.steps)
    done = run.finished()
    if done is not None:
        return done
    kw = {"max_steps": -1} if steps is None else {}
    trainer = CurriculumTrainer(model=model_for_data(data.meta, seed=_init_seed(seed), **cfg.model),
                                args=_args(cfg, run, seed, **kw), packed=data, curriculum=curriculum,
                                eval_dataset=data.validation(cfg.eval_blocks), **extra)
    out = trainer.train(resume_from_checkpoint=run.resume())
    cur = trainer.curriculum
    final = _final(trainer.evaluate())
    weights = cur.result().get("weights") or weights_hint
    probe = trainer.probe
    forward = probe.blocks_scored * FORWARD_COST / trainer.global_batch if probe is not None else 0.0
    result = {"method": method, "seed": seed, "main_steps": trainer.state.global_step,
              "compute_steps": trainer.state.global_step + forward,
              "seconds_per_step": out.metrics["train_runtime"] / max(trainer.state.global_step, 1), "final": final,
              "curve": eval_curve(trainer.state.log_history), "weights": weights}
    return run.done(result)


def _steps_within_budget(cfg: CompareConfig, config, domains: int, eval_blocks: int) -> int:
    """Optimizer steps that, with the held-out measurements the method asks for (``wants_eval`` of a method that
    ``needs`` eval_stats, e.g. Aioli's 1 + domains x lp_rounds per round, each scoring the mixing set's
    ``eval_blocks`` forward-only), fit in the budget: the most steps whose total stays within it. The set's real size
    counts: ``--mixing-eval-blocks`` is an upper bound that a small validation split may not fill."""
    from curricula.methods.seam import DataInfo, RunInfo

    gb = cfg.batch_size * _world()
    data = DataInfo(np.arange(domains), [str(d) for d in range(domains)])

    def used(n: int) -> float:
        cur = config.build(data, RunInfo(gb, n, 0))
        if "eval_stats" not in cur.needs:
            return n
        return n + sum(cur.wants_eval(s) for s in range(n + 1)) * eval_blocks * FORWARD_COST / gb

    lo, hi = 1, cfg.steps  # used(n) grows with n: the largest n with used(n) <= budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if used(mid) <= cfg.steps else (lo, mid - 1)
    return lo


def _fingerprint(cfg: CompareConfig) -> dict:
    d = asdict(cfg)
    d.pop("methods"), d.pop("seeds")
    return d


def _run_doremi(cfg, data, method: str, seed: int, out: Path) -> dict:
    """DoReMi (3 runs) or one-run DoReMi for the budget: the reference's (and proxy's) steps come out of it."""
    from curricula.methods import DoReMiRecipe
    from hf_trainer_ext.pipelines.doremi import run_doremi

    ref = max(1, round(cfg.steps * cfg.reference_fraction))
    proxy = max(1, round(cfg.steps * cfg.proxy_fraction)) if method == "doremi" else 0
    gb = cfg.batch_size * _world()
    scoring = len(data.train) * FORWARD_COST / gb  # the reference scores every block once (cached losses)
    main = cfg.steps - ref - proxy - math.ceil(scoring)
    if main < 1:
        raise ConfigError(f"compare: {method}'s reference ({ref} steps){f' and proxy ({proxy})' if proxy else ''} and "
                          f"its scoring of {len(data.train):,} blocks ({scoring:.0f} step-equivalents) use the whole "
                          f"budget of {cfg.steps} steps; raise --steps or lower --reference-fraction")
    training = {"per_device_train_batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate, "seed": seed,
                "disable_tqdm": True, **cfg.training}
    recipe = DoReMiRecipe(mode="proxy" if method == "doremi" else "online", rounds=1, reference_steps=ref,
                          proxy_steps=max(proxy, 1), main_steps=main, model=dict(cfg.model), training=training,
                          max_eval_blocks=cfg.eval_blocks,
                          main_training={"eval_strategy": "steps", "eval_steps": cfg.eval_every})
    res = run_doremi(recipe, data.path, out)
    offset = ref + proxy + math.ceil(scoring)  # the main run's step 0 comes after these in the budget
    return {"method": method, "seed": seed, "main_steps": main, "compute_steps": ref + proxy + scoring + main,
            "seconds_per_step": _main_seconds_per_step(out / "main"), "final": res.get("main_eval") or {},
            "curve": [dict(c, step=c["step"] + offset) for c in res.get("main_curve", [])],
            "weights": res["final_weights"], "pre_steps": offset}


def _main_seconds_per_step(folder: Path) -> float | None:
    """The main run's wall-clock per step, from its finished-run record (timings are kept out of results that
    pipelines compare)."""
    from hf_trainer_ext.pipelines.runs import DONE

    path = folder / DONE
    return json.loads(path.read_text())["result"].get("seconds_per_step") if path.is_file() else None


def _world() -> int:
    from accelerate import PartialState

    return PartialState().num_processes


def _lfr_setup(cfg: CompareConfig, data: PackedData, mixture, seed: int):
    """The LFR plan (learn, focus 50 %, review, then focus 70 % repeated) sized to the budget: the repetitions whose
    length is closest to it; when even one repetition over all blocks is longer, LFR trains on a random subset of the
    blocks (an equal share of every domain, renumbered) small enough for the plan to fit. Returns the config and the
    training blocks."""
    from curricula.methods import LFRConfig, load_recipe

    gb = cfg.batch_size * _world()

    def steps_of(config, n):
        return sum(max(1, math.ceil(b / gb)) for b in config.plan.blocks_per_epoch(n))

    n = len(data.train)
    best = None
    for reps in range(1, 50):
        config = load_recipe("lfr", reps=reps)
        steps = steps_of(config, n)
        if best is None or abs(steps - cfg.steps) < abs(best[1] - cfg.steps):
            best = (config, steps)
        if steps > cfg.steps:
            break
    config, steps = best
    train = data.train
    if steps > cfg.steps * 1.05:  # fewer blocks, so that the plan's epochs fit the budget
        keep = max(gb, int(n * cfg.steps / steps))
        dom = np.asarray(train.with_format("numpy")["domain_id"])
        rng = np.random.default_rng([seed, 1_000_003])
        picks = [rng.permutation(np.flatnonzero(dom == d))[: max(1, round(keep * np.mean(dom == d)))]
                 for d in np.unique(dom)]
        rows = np.sort(np.concatenate(picks))
        train = (train.select(rows.tolist()).flatten_indices().remove_columns(["block_id"])
                 .add_column("block_id", np.arange(rows.size, dtype=np.int64)))
    return LFRConfig.from_plan(config.plan, mixture=mixture), train


def run_compare(cfg: CompareConfig, packed: str | Path, out_dir: str | Path) -> dict:
    """Every (method, seed) run (reusing finished ones), then the report. Returns the report's data."""
    from curricula.methods import MixtureConfig, load_recipe
    from curricula.report.compare import build_report, write_report

    _check_methods(cfg.methods)
    data = PackedData.load(packed)
    if not data.has("validation"):
        raise ConfigError(f"compare needs held-out data: {packed} has no validation split; pack with one "
                          "(curricula pack --val-fraction ...)")
    out = Path(out_dir)
    mixing_eval = per_domain_subset(data.split("validation"), cfg.mixing_eval_blocks, skip=cfg.eval_blocks)
    results: list[dict] = []
    for seed in cfg.seeds:
        for method in [m for m in cfg.methods if m != "lfr"]:
            folder = out / "runs" / method / f"seed{seed}"
            print(f"compare: {method}, seed {seed} → {folder}", flush=True)
            if method in FIXED:
                weights = _fixed_weights(method, data)  # not the stored result's: runs before 0.2.0 stored source shares
                res = {**_run_single(cfg, data, method, seed, folder, MixtureConfig(weights=method),
                                     weights_hint=weights), "weights": weights}
            elif method in PIPELINED:
                res = _run_doremi(cfg, data, method, seed, folder)
            else:
                params = {**budget_params(method, cfg.steps, len(data.domain_names)), **cfg.method_params.get(method, {})}
                config = load_recipe(method, **params)
                res = _run_single(cfg, data, method, seed, folder, config, mixing_eval_dataset=mixing_eval,
                                  steps=_steps_within_budget(cfg, config, len(data.domain_names), len(mixing_eval)))
            results.append(res)
        if "lfr" in cfg.methods:
            mixture = _best_mixture([r for r in results if r["seed"] == seed], data.domain_names)
            folder = out / "runs" / "lfr" / f"seed{seed}"
            print(f"compare: lfr over {mixture['name']}, seed {seed} → {folder}", flush=True)
            config, blocks = _lfr_setup(cfg, data, mixture["weights"], seed)
            res = _run_single(cfg, data, "lfr", seed, folder, config, train_dataset=blocks)
            results.append({**res, "mixture": mixture["name"], "blocks": len(blocks)})
    report = build_report(results, data.domain_names, {**asdict(cfg), "packed": str(packed)})
    write_report(report, results, out)
    return report


def _fixed_weights(method: str, data: PackedData) -> list[float]:
    """The weights a fixed mixture's run samples with (``resolve_weights`` over the packed blocks, as the run does)."""
    return resolve_weights(method, data.domain_names, data.domain_blocks("train")).tolist()


def _best_mixture(results: list[dict], names: list[str]) -> dict:
    """The mixture whose run ended with the lowest average held-out perplexity (uniform's if none did better)."""
    scored = [r for r in results if r.get("weights") is not None and r["final"].get("eval_ppl_avg") is not None]
    if not scored:
        return {"name": "uniform", "weights": "uniform"}
    best = min(scored, key=lambda r: r["final"]["eval_ppl_avg"])
    return {"name": best["method"], "weights": [float(x) for x in best["weights"]]}


def write_json(path: Path, obj) -> None:
    from curricula.run_layout import write_json as _write

    _write(path, json.loads(json.dumps(obj, default=_jsonable)))


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)
