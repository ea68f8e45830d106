"""Multi-run pipelines on the curriculum trainer: DoReMi (reference, proxy, main) and continual pretraining's stages.
Their recipes are pure dataclasses beside their methods: ``curricula.methods.doremi.pipeline``,
``curricula.methods.continual.pipeline``."""
