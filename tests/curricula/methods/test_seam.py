"""The seam (``curricula/methods/seam.py``) is small: a method defined in a few lines trains through the same
trainer."""

import json

import numpy as np

from curricula.methods import METHODS, DataInfo, RunInfo
from hf_trainer_ext import CurriculumTrainer

DOM = np.repeat([0, 1, 2], 32)  # the domains of the blocks fixture


def test_a_new_method_is_one_config_and_one_curriculum(tmp_path, blocks, loss_tap, per_step, targs, tiny_gpt2):
    """A method defined here, in a few lines, trains through the same trainer (the seam is the whole interface)."""
    from dataclasses import dataclass

    from curricula.methods import Curriculum, MethodConfig, register

    class EasyFirst(Curriculum):
        name = "easy_first"

        def epoch_steps(self):
            return [self.run.max_steps]

        def batches(self, epoch, start=0):
            order = np.argsort(self.data.domain_ids, kind="stable")  # domain 0 first
            for t in range(start, self.run.max_steps):
                yield np.resize(np.roll(order, -t * self.run.global_batch), self.run.global_batch)

    @dataclass
    class EasyFirstConfig(MethodConfig):
        def build(self, data: DataInfo, run: RunInfo):
            return EasyFirst(data, run)

    register("easy_first_test")(EasyFirstConfig)
    try:
        tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, curriculum='{method: easy_first_test}'),
                               train_dataset=blocks())
        tap = loss_tap(tr)
        tr.train()
        assert set(DOM[per_step(tap)[0]]) == {0}
        assert json.loads((tmp_path / "run.json").read_text())["method"] == "easy_first"
    finally:
        METHODS.pop("easy_first_test")
