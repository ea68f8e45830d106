"""Learning-rate schedules as pure functions of the step (``schedules``); the torch glue is
``hf_trainer_ext.schedulers``."""
