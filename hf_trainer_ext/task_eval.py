"""Zero-shot tasks scored at every evaluation (``args.eval_tasks``): log-likelihood with the current weights."""

from __future__ import annotations

from pathlib import Path


class TaskEvaluator:
    """``args.eval_tasks``: comma-separated task JSONL paths or registered task names, loaded once. Every process
    scores the same examples on its own copy of the model, so no gather is needed."""

    def __init__(self, spec: str | None, tokenizer_spec: str | None, batch_size: int):
        self.spec, self.tokenizer_spec, self.batch_size = spec, tokenizer_spec, batch_size
        self._loaded = None

    @classmethod
    def from_args(cls, args) -> "TaskEvaluator":
        return cls(getattr(args, "eval_tasks", None), getattr(args, "eval_tokenizer", None),
                   args.per_device_eval_batch_size)

    def _load(self):
        from curricula.data.tokenizers import load_tokenizer
        from curricula.evaluation.tasks import get_task, load_task_file

        tasks = {}
        for item in (t.strip() for t in self.spec.split(",") if t.strip()):
            path = Path(item)
            tasks[path.stem if path.suffix == ".jsonl" else item] = (
                load_task_file(path) if path.suffix == ".jsonl" else get_task(item).load())
        return load_tokenizer(self.tokenizer_spec), tasks

    def scores(self, model, prefix: str = "eval") -> dict[str, float]:
        if not self.spec:
            return {}
        from hf_trainer_ext.evaluation import score_task

        if self._loaded is None:
            self._loaded = self._load()
        tokenizer, tasks = self._loaded
        out = {}
        for name, examples in tasks.items():
            result = score_task(model, tokenizer, examples, batch_size=self.batch_size)
            out[f"{prefix}_task/{name}/accuracy"] = result["accuracy"]
            if "accuracy_norm" in result:
                out[f"{prefix}_task/{name}/accuracy_norm"] = result["accuracy_norm"]
        return out
