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
    for flag in ("--curriculum CURRICULUM", "--domain_weights", "--packed", "--overwrite_output_dir",
                 "--nonfinite_policy", "--learning_rate"):
        assert flag in proc.stdout
    assert "(default: stop)" in proc.stdout and "(default: lfr_sample_cpu" not in proc.stdout
