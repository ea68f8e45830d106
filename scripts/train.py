"""Train a causal LM with a curriculum: the same as ``curricula train`` (see ``hf_trainer_ext/train.py``), kept as a
file for launchers that take a script path (``accelerate launch scripts/train.py ...``)."""

from hf_trainer_ext.train import main, run

__all__ = ["main"]

if __name__ == "__main__":
    run()
