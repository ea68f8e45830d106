"""Multi-run pipelines on the curriculum trainer: DoReMi (reference, proxy, main) and continual pretraining's stages.
Their recipes are pure dataclasses in ``curricula.pipelines``."""
