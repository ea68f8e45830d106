"""``python -m hf_trainer_ext <command>``: the ``curricula`` command, for launchers that take a module
(``accelerate launch -m hf_trainer_ext train ...``, ``torchrun --nproc_per_node 2 -m hf_trainer_ext train ...``)."""

import sys

from hf_trainer_ext.cli import main

sys.exit(main())
