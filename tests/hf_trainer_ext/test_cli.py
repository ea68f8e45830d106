"""Every option of every subcommand has help text, and --help shows the defaults."""

import argparse
import subprocess
import sys

from hf_trainer_ext.cli import build_parser


def _walk(parser, path):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, [*path, name])
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), parser, action


def test_every_option_of_every_subcommand_has_help_and_shows_its_default():
    missing, no_defaults = [], []
    for path, parser, action in _walk(build_parser(), ["curricula"]):
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path}: {action.dest}")
        if path != "curricula train" and parser.formatter_class is not argparse.ArgumentDefaultsHelpFormatter:
            no_defaults.append(path)
    assert not missing, missing
    assert not no_defaults, sorted(set(no_defaults))


def test_train_help_lists_every_argument_with_its_default():
    proc = subprocess.run([sys.executable, "-m", "hf_trainer_ext", "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--curriculum CURRICULUM, --recipe CURRICULUM", "--recipe_params CURRICULUM_PARAMS", "--config YAML",
                 "--domain_weights", "--packed", "--overwrite_output_dir", "--nonfinite_policy", "--learning_rate",
                 "--stall_timeout"):
        assert flag in proc.stdout
    assert "(default: stop)" in proc.stdout and "(default: lfr_sample_cpu" not in proc.stdout


def test_pipeline_step_counts_are_overridden_from_the_command_line(monkeypatch, tmp_path, capsys):
    """``curricula doremi --reference-steps/--proxy-steps/--main-steps/--eta/--rounds`` and ``curricula continual
    --steps STAGE=N`` change a bundled recipe without copying its YAML; a stage that is not in the recipe is named."""
    import hf_trainer_ext.pipelines.continual as continual
    import hf_trainer_ext.pipelines.doremi as doremi
    from hf_trainer_ext.cli import main

    seen = {}

    def fake_doremi(recipe, packed, out):
        seen["doremi"] = recipe
        return {"domains": ["a"], "rounds": [{"round": 0, "weights": [1.0], "l1_change": 0.0}]}

    def fake_continual(recipe, out):
        seen["continual"] = recipe
        return {"last_stage_variants": [{"replay": 0.05, "before": {"eval_en_loss": 1.0}, "after": {"eval_en_loss": 1.0}}]}

    monkeypatch.setattr(doremi, "run_doremi", fake_doremi)
    monkeypatch.setattr(continual, "run_continual", fake_continual)
    assert main(["doremi", "--packed", str(tmp_path), "--out", str(tmp_path / "d"), "--reference-steps", "20",
                 "--proxy-steps", "30", "--main-steps", "40", "--eta", "3", "--rounds", "1"]) == 0
    r = seen["doremi"]
    assert (r.reference_steps, r.proxy_steps, r.main_steps, r.eta, r.rounds) == (20, 30, 40, 3.0, 1)
    assert main(["continual", "continual_replay", "--out", str(tmp_path / "c"), "--steps", "de=50"]) == 0
    assert [(s.name, s.steps) for s in seen["continual"].stages] == [("en", 600), ("de", 50)]
    assert main(["continual", "continual_replay", "--out", str(tmp_path / "c"), "--steps", "fr=50"]) == 2
    assert "--steps names stage(s) ['fr']; the recipe's stages are ['en', 'de']" in capsys.readouterr().err
    assert main(["doremi", "--packed", str(tmp_path), "--out", str(tmp_path / "d"), "--rounds", "0"]) == 2
    assert "rounds" in capsys.readouterr().err  # the recipe's own checks run on the overrides
