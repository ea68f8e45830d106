"""``curricula``, the installed command: the pure data/analysis commands (``curricula.cli``) plus the ones that train
or load models: ``train``, ``doremi``, ``continual``, ``eval``, ``push``. Recipes and training configs are accepted by
bundled name (``lfr``, ``doremi``, ``continual_replay``, ``lfr_sample_cpu``) from any working directory, or by path.

Run several processes with ``accelerate launch -m hf_trainer_ext <command> ...`` or
``torchrun --nproc_per_node N -m hf_trainer_ext <command> ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from curricula.cli import HELP, build_parser as data_parser, format_table, run_command
from curricula.errors import ConfigError


def _load(spec: str, kind: type, command: str):
    """A recipe of the kind this command runs; any other method is refused with the command that runs it."""
    from curricula.methods import load_recipe
    from curricula.recipes import read_recipe

    method = read_recipe(spec)["method"]
    config = load_recipe(spec)
    if not isinstance(config, kind):
        runner = f"curricula {method} --recipe {spec}" if method in ("doremi", "continual") else \
            f"curricula train --recipe {spec}"
        raise ConfigError(f"recipe {spec!r} is a {method!r} recipe, not a {command!r} one; run it with `{runner}`")
    return config


def cmd_train(a: argparse.Namespace) -> None:
    from hf_trainer_ext.train import main

    main(a.args)


def cmd_doremi(a: argparse.Namespace) -> None:
    from dataclasses import replace

    from curricula.methods import DoReMiRecipe
    from hf_trainer_ext.pipelines.doremi import run_doremi

    recipe = _load(a.recipe, DoReMiRecipe, "doremi")
    # replace() re-runs the recipe's checks on the overrides
    overrides = {k: getattr(a, k) for k in ("rounds", "reference", "reference_steps", "proxy_steps", "main_steps", "eta")
                 if getattr(a, k) is not None}
    recipe = replace(recipe, **overrides)
    result = run_doremi(recipe, Path(a.packed), Path(a.out))
    names = result["domains"]
    rows = [[n, *[f"{r['weights'][i]:.3f}" for r in result["rounds"]]] for i, n in enumerate(names)]
    print(format_table(["domain", *[f"round {r['round']}" for r in result["rounds"]]], rows))
    for r in result["rounds"]:
        print(f"round {r['round']}: L1 change {r['l1_change']:.4f}")
    if "main_eval" in result:
        print("main model:", {k: round(v, 3) for k, v in result["main_eval"].items()})
    print(f"weights: {Path(a.out) / 'domain_weights.json'}; plot: {Path(a.out) / 'domain_weights_by_round.png'}")


def cmd_continual(a: argparse.Namespace) -> None:
    from dataclasses import replace

    from curricula.methods import ContinualRecipe
    from hf_trainer_ext.pipelines.continual import run_continual

    recipe = _load(a.recipe, ContinualRecipe, "continual")
    if a.packed:
        given = dict(_stage_path(x) for x in a.packed)
        unknown = sorted(set(given) - {s.name for s in recipe.stages})
        if unknown:
            raise ConfigError(f"--packed names stage(s) {unknown}; the recipe's stages are "
                              f"{[s.name for s in recipe.stages]}")
        recipe = replace(recipe, stages=[replace(s, packed=given.get(s.name, s.packed)) for s in recipe.stages])
    if a.steps:
        steps = {name: _int(n, "--steps") for name, n in (_stage_path(x, "--steps") for x in a.steps)}
        unknown = sorted(set(steps) - {s.name for s in recipe.stages})
        if unknown:
            raise ConfigError(f"--steps names stage(s) {unknown}; the recipe's stages are {[s.name for s in recipe.stages]}")
        recipe = replace(recipe, stages=[replace(s, steps=steps.get(s.name, s.steps)) for s in recipe.stages])
    result = run_continual(recipe, Path(a.out))
    rows = []
    for v in result["last_stage_variants"]:
        rows.append([f"{100 * v['replay']:.0f}%", *[f"{v['before'][k]:.3f} → {v['after'][k]:.3f}" for k in sorted(v["after"])]])
    keys = sorted(result["last_stage_variants"][0]["after"])
    print(format_table(["replay", *[k.removeprefix("eval_").removesuffix("_loss") + " val loss" for k in keys]], rows))
    print(f"curves: {Path(a.out) / 'continual.png'}; numbers: {Path(a.out) / 'continual.json'}")


def _stage_path(text: str, flag: str = "--packed") -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        example = "--packed de=data/packed/de" if flag == "--packed" else "--steps de=500"
        raise ConfigError(f"{flag} {text!r}: give STAGE={'PATH' if flag == '--packed' else 'N'}, e.g. {example}")
    return name, value


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a whole number of steps") from None


def cmd_compare(a: argparse.Namespace) -> None:
    from hf_trainer_ext.pipelines.compare import run_compare
    from hf_trainer_ext.pipelines.compare_config import CompareConfig

    model = dict(zip(("n_layer", "n_embd", "n_head"), (int(x) for x in a.model.split(","))))
    cfg = CompareConfig(methods=a.methods, seeds=a.seeds, steps=a.steps, batch_size=a.batch_size,
                        learning_rate=a.learning_rate, model=model, eval_blocks=a.eval_blocks, eval_every=a.eval_every,
                        mixing_eval_blocks=a.mixing_eval_blocks, reference_fraction=a.reference_fraction,
                        proxy_fraction=a.proxy_fraction, training=_mapping(a.training, "--training"),
                        method_params=_mapping(a.method_params, "--method-params"))
    report = run_compare(cfg, Path(a.packed), Path(a.out))
    print(report["recommendation"])
    print(f"report: {Path(a.out) / 'report.md'} (plots val_loss.png, weights.png; numbers report.json)")


def _mapping(text: str | None, flag: str) -> dict:
    from hf_trainer_ext.arguments import parse_mapping

    return parse_mapping(text, flag.lstrip("-")) or {}


def cmd_eval(a: argparse.Namespace) -> None:
    from curricula.evaluation.build import register_built_tasks
    from hf_trainer_ext.evaluation import evaluate_model, write_results

    if a.task_dir:
        register_built_tasks(Path(a.task_dir))
    results = evaluate_model(Path(a.model_dir), a.tasks, batch_size=a.batch_size)
    rows = [[name, r["kind"], r["n"], r["accuracy"], r.get("accuracy_norm", "")] for name, r in results["tasks"].items()]
    print(format_table(["task", "kind", "n", "accuracy", "accuracy (length-normalised)"], rows))
    out = write_results(results, Path(a.out) if a.out else Path(a.model_dir) / "eval_results.json")
    print(f"results: {out}")


def cmd_push(a: argparse.Namespace) -> None:
    from hf_trainer_ext.hub import push_run

    url = push_run(Path(a.run_dir), a.repo_id, token=a.token, endpoint=a.endpoint, private=a.private,
                   license=a.license, include_checkpoints=a.include_checkpoints)
    print(f"pushed {a.run_dir} to {a.repo_id}: {url}")


def cmd_hub_standin(a: argparse.Namespace) -> None:
    import time

    from hf_trainer_ext.hub_standin import HubStandIn

    with HubStandIn(port=a.port) as hub:
        print(f"a Hub stand-in is serving at {hub.endpoint} (Ctrl-C stops it; what it receives stays in memory). Try:\n"
              f"  HF_HUB_DISABLE_XET=1 curricula push RUN_DIR --repo-id me/my-run --token local --endpoint {hub.endpoint}",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print(f"stopped; it had received: {', '.join(sorted(hub.state.repos)) or 'nothing'}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", add_help=False, help="train with a recipe (any TrainingArguments flag; "
                                                     "`curricula train --help` lists them all with defaults)")
    t.add_argument("args", nargs=argparse.REMAINDER, help="TrainingArguments and curricula flags (see --help)")
    t.set_defaults(func=cmd_train)

    dr = sub.add_parser("doremi", formatter_class=HELP,
                        help="DoReMi: reference → Group-DRO proxy → domain weights (iterated), then the main model; "
                             "or one main run that learns them (mode: online)")
    dr.add_argument("--recipe", default="doremi", help="a bundled recipe name (doremi, doremi_online) or a YAML path")
    dr.add_argument("--packed", required=True, help="packed data (curricula pack) with a domain per block")
    dr.add_argument("--out", required=True, help="output folder (one sub-folder per run)")
    dr.add_argument("--rounds", type=int, help="override the recipe's number of rounds")
    dr.add_argument("--reference", choices=["cached", "live"], help="override the recipe's reference mode")
    dr.add_argument("--reference-steps", type=int, help="override the recipe's reference_steps")
    dr.add_argument("--proxy-steps", type=int, help="override the recipe's proxy_steps")
    dr.add_argument("--main-steps", type=int, help="override the recipe's main_steps")
    dr.add_argument("--eta", type=float, help="override the recipe's Group-DRO step size")
    dr.set_defaults(func=cmd_doremi)

    ct = sub.add_parser("continual", formatter_class=HELP,
                        help="continual pretraining: dataset stages with re-warm/re-decay and replay")
    ct.add_argument("recipe", help="a bundled recipe name (continual_replay) or a YAML path")
    ct.add_argument("--out", required=True, help="output folder (one sub-folder per stage and variant)")
    ct.add_argument("--packed", action="append", metavar="STAGE=PATH",
                    help="the packed data of a stage, replacing the recipe's path (repeat for each stage)")
    ct.add_argument("--steps", action="append", metavar="STAGE=N",
                    help="a stage's optimizer steps, replacing the recipe's (repeat for each stage)")
    ct.set_defaults(func=cmd_continual)

    from hf_trainer_ext.pipelines.compare_config import DEFAULT_METHODS, CompareConfig

    d = CompareConfig()
    cp = sub.add_parser("compare", formatter_class=HELP,
                        help="several methods on your packed data at one budget (same model, init and total "
                             "compute), any number of seeds: a report saying which method pays, if any")
    cp.add_argument("--packed", required=True, help="packed data (curricula pack) with a validation split")
    cp.add_argument("--out", required=True, help="output folder: runs/<method>/seed<k>, report.md, plots (a rerun "
                                                 "reuses finished runs and resumes interrupted ones)")
    cp.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                    help="uniform, token_proportional, doremi, doremi_online, any online mixer (odm, ado, aioli), lfr")
    cp.add_argument("--seeds", nargs="+", type=int, default=d.seeds, help="one run of every method per seed")
    cp.add_argument("--steps", type=int, default=d.steps, help="total compute per method, in optimizer steps")
    cp.add_argument("--batch-size", type=int, default=d.batch_size, help="blocks per device per step")
    cp.add_argument("--learning-rate", type=float, default=d.learning_rate,
                    help="peak learning rate of every run (warmup, then cosine decay)")
    cp.add_argument("--model", default="2,128,4", help="the GPT-2 trained: n_layer,n_embd,n_head (e.g. 12,768,12 on a GPU)")
    cp.add_argument("--eval-blocks", type=int, default=d.eval_blocks, help="held-out blocks scored for the report")
    cp.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between held-out evaluations")
    cp.add_argument("--mixing-eval-blocks", type=int, default=d.mixing_eval_blocks,
                    help="other held-out blocks, for methods that learn from validation loss (aioli)")
    cp.add_argument("--reference-fraction", type=float, default=d.reference_fraction,
                    help="share of the budget for DoReMi's reference run")
    cp.add_argument("--proxy-fraction", type=float, default=d.proxy_fraction,
                    help="share of the budget for DoReMi's proxy run")
    cp.add_argument("--training", help="more TrainingArguments for every run, as JSON/YAML (e.g. '{bf16: true}')")
    cp.add_argument("--method-params", help="recipe keys per method, as JSON/YAML (e.g. '{odm: {warmup_steps: 40}}'); "
                                            "by default the online mixers' step counts are scaled to the budget")
    cp.set_defaults(func=cmd_compare)

    ev = sub.add_parser("eval", formatter_class=HELP, help="score a model folder on zero-shot tasks (log-likelihood)")
    ev.add_argument("model_dir", help="an AutoModelForCausalLM folder with its tokenizer")
    ev.add_argument("--tasks", nargs="+", required=True, help="task names (built ones: file stems in --task-dir)")
    ev.add_argument("--task-dir", help="a folder made by `curricula tasks build`")
    ev.add_argument("--batch-size", type=int, default=16, help="examples per forward pass")
    ev.add_argument("--out", help="results JSON (default: MODEL_DIR/eval_results.json)")
    ev.set_defaults(func=cmd_eval)

    pu = sub.add_parser("push", formatter_class=HELP,
                        help="publish a run (model, curriculum log, plots, model card) to the Hub")
    pu.add_argument("run_dir", help="a training output_dir")
    pu.add_argument("--repo-id", help="name or namespace/name")
    pu.add_argument("--token", help="a Hub token (default: $HF_TOKEN); never printed")
    pu.add_argument("--private", action="store_true", help="create the repository private")
    pu.add_argument("--license", default="apache-2.0", help="the card's licence")
    pu.add_argument("--include-checkpoints", action="store_true", help="also upload checkpoint-* folders")
    pu.add_argument("--endpoint", help="the Hub to push to (default: $HF_ENDPOINT, else huggingface.co); e.g. the "
                                       "address `curricula hub-standin` prints")
    pu.set_defaults(func=cmd_push)

    hs = sub.add_parser("hub-standin", formatter_class=HELP,
                        help="serve a local stand-in for the Hub (create, upload, download) to try `curricula push "
                             "--endpoint` without an account; Ctrl-C stops it")
    hs.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    hs.set_defaults(func=cmd_hub_standin)


def build_parser() -> argparse.ArgumentParser:
    p = data_parser(add_commands)
    p.description = __doc__.split("\n\n")[0]
    return p


def _end_distributed() -> None:
    """After a multi-process command (``accelerate launch``), free the process group while the interpreter can still
    join gloo's threads (see ``hf_trainer_ext.distributed``); commands that never started one import nothing."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        from hf_trainer_ext.distributed import shutdown_distributed

        shutdown_distributed()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # everything after it is HfArgumentParser's (argparse's REMAINDER drops leading flags)
        return run_command(argparse.Namespace(func=cmd_train, args=argv[1:]), finish=_end_distributed)
    return run_command(build_parser().parse_args(argv), finish=_end_distributed)


if __name__ == "__main__":
    sys.exit(main())
