"""Publish a curricula run to the Hugging Face Hub: what needs the Hub client or a live Trainer.

* ``push_run`` (``curricula push RUN_DIR --repo-id ...``): create the repo and upload the run folder's curated files
  (``curricula.report.files.collect_run_files``) with a generated card (``curricula.report.card.render_card``).
  The run folder is never modified: the upload is staged in a temporary folder (hard links where possible). A Hub
  that cannot be reached or refuses the token is a ``HubPushError`` saying which, naming the endpoint and the repo,
  never the token.
* ``write_trainer_card``: ``CurriculumTrainer.create_model_card`` (Trainer's ``push_to_hub`` calls it before its
  upload): the curricula card with what Trainer's own card has (evaluation results, the keywords, ...).
* ``HubToken`` / ``protect_hub_token``: keep the token out of ``training_args.bin``.

The token comes from the ``token`` argument, ``HF_TOKEN`` or the stored login (``hf auth login``) and is never
printed or written. The card rendering, the file rules and the LR plot are pure and live in ``curricula.report``;
the names are re-exported here for older imports.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import tempfile
import warnings
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

from curricula.report.card import (  # noqa: F401  (re-exported)
    CARD_KEYWORDS,
    CARD_TEMPLATE,
    CONFIG_KEYS,
    continual_context,
    logged_lrs,
    lr_schedule_info,
    parse_log_history,
    prepare_extras,
    render_card,
    run_method,
    write_lr_plot,
)
from curricula.report.files import (  # noqa: F401  (re-exported)
    CONTINUAL_PLOT,
    LR_PLOT,
    MODEL_FILES,
    TABLE_MAX_BYTES,
    TOKENIZER_FILES,
    TOP_LEVEL_DOREMI,
    HubPushError,
    collect_run_files,
)
from curricula.run_layout import write_text

DEFAULT_COMMIT_MESSAGE = "Upload curricula run"
DEFAULT_LICENSE = "apache-2.0"
TOKENS_URL = "https://huggingface.co/settings/tokens"
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_RE = re.compile(rf"^(?:{_REPO_PART}/)?{_REPO_PART}$")
#: what Trainer.push_to_hub leaves out of its upload of output_dir (its ignore_patterns)
TRAINER_UPLOAD_IGNORE = ("_*", "checkpoint-*")


class HubToken(str):
    """A hub token that is a plain ``str`` to HTTP code but pickles as ``None`` (and shows as ``'<HUB_TOKEN>'``).

    Why: ``Trainer`` writes ``torch.save(self.args)`` (``training_args.bin``) into every checkpoint and into
    ``output_dir`` right before ``push_to_hub`` / ``hub_strategy`` uploads them, and a ``TrainingArguments`` pickle
    holds ``hub_token`` in clear text (``to_dict`` masks it, pickling does not): the token would be published.
    """

    __slots__ = ()

    def __reduce_ex__(self, protocol):  # unpickles as None: training_args.bin keeps no token
        return (type(None), ())

    def __deepcopy__(self, memo) -> "HubToken":  # deepcopy would otherwise go through __reduce_ex__ and lose it
        return self

    def __copy__(self) -> "HubToken":
        return self

    def __repr__(self) -> str:
        return "'<HUB_TOKEN>'"


def protect_hub_token(args) -> None:
    """Wrap ``args.hub_token`` in ``HubToken`` (in place) so no pickle of ``args`` carries it; pushes still use it."""
    token = getattr(args, "hub_token", None)
    if isinstance(token, str) and token and not isinstance(token, HubToken):
        args.hub_token = HubToken(token)


def check_repo_id(repo_id: str | None) -> str:
    if not repo_id or not str(repo_id).strip():
        raise HubPushError("no repo id: pass --repo-id NAME or --repo-id NAMESPACE/NAME (e.g. my-org/lfr-tiny)")
    repo_id = str(repo_id).strip()
    if not _REPO_RE.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise HubPushError(
            f"invalid repo id {repo_id!r}: use NAME or NAMESPACE/NAME with letters, digits, '-', '_' or '.' "
            "(at most 96 characters each, no '--' or '..', not starting or ending with '-' or '.')"
        )
    return repo_id


def _stored_token() -> str | None:
    """The token ``hf auth login`` stored (huggingface_hub's ``get_token``), if any."""
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - an unreadable token file is the same as none
        return None


def resolve_token(token: str | None) -> str:
    token = token or os.environ.get("HF_TOKEN") or _stored_token()
    if not token or not token.strip():
        raise HubPushError(
            "no Hugging Face token: set the HF_TOKEN environment variable (a write token from "
            f"{TOKENS_URL}), run `hf auth login`, or pass token=... (the token is never printed)"
        )
    return token.strip()


# ---- push failures: unreachable Hub vs refused token ----------------------------------------------------------------


def _scrub(text: str, token: str | None) -> str:
    text = str(text)
    if token:
        text = text.replace(token, "<token>")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "<token>", text)


def _reason(err: BaseException) -> str:
    """The innermost OS-level reason of a transport error ('[Errno 111] Connection refused', ...)."""
    seen, e = set(), err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        last = e
        e = e.__cause__ or e.__context__
    return str(last) or type(last).__name__


_DNS_HINTS = ("name or service not known", "nodename nor servname", "getaddrinfo", "name resolution",
              "no address associated", "errno -2", "errno -3", "errno -5", "errno 11001")


def hub_failure(err: BaseException, endpoint: str, repo_id: str, token: str | None = None) -> HubPushError | None:
    """A ``HubPushError`` saying what went wrong talking to the Hub at ``endpoint`` for ``repo_id`` and what to do,
    or None if ``err`` is not a failure of the Hub connection or of its answer. The token never appears in it."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    where = f"the Hub at {endpoint} (repo {repo_id})"
    network = ("check the network connection (and a proxy: HTTPS_PROXY), or HF_ENDPOINT if you meant another "
               f"Hub (now {endpoint}), then push again")
    if isinstance(err, OfflineModeIsEnabled):
        return HubPushError(f"cannot push to {where}: huggingface_hub is in offline mode (HF_HUB_OFFLINE=1); "
                            "unset HF_HUB_OFFLINE (or set it to 0) to push")
    if isinstance(err, HfHubHTTPError) or isinstance(err, httpx2.HTTPStatusError):
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
        server = _scrub(getattr(err, "server_message", None) or "", token).strip()
        said = f" (the Hub said: {server})" if server else ""
        if status == 401:
            return HubPushError(
                f"{where} refused the token (401 Unauthorized){said}: the token is invalid, expired or revoked; "
                f"create a write token at {TOKENS_URL} and set HF_TOKEN, or run `hf auth login`")
        if status == 403:
            return HubPushError(
                f"{where} refused the token (403 Forbidden){said}: the token may not write to {repo_id}; check "
                f"that it has write permission (a fine-grained token needs write access to the namespace "
                f"{repo_id.split('/')[0] if '/' in repo_id else 'of your user'}) at {TOKENS_URL}, or run "
                "`hf auth login` with a write token")
        if status == 404:
            return HubPushError(
                f"{where} answered 404 Not Found{said}: the repository does not exist or the token cannot see it; "
                "check the repo id and that the token may write to its namespace")
        if status is not None and (status == 429 or status >= 500):
            return HubPushError(f"{where} answered {status}{said}: the Hub is busy or failing; push again later")
        return HubPushError(f"{where} answered {status}{said}: the push was not accepted")
    if isinstance(err, httpx2.TimeoutException):
        return HubPushError(f"{where} did not answer in time ({type(err).__name__}: {_scrub(_reason(err), token)}); "
                            + network)
    if isinstance(err, (httpx2.TransportError, ConnectionError)):
        reason = _scrub(_reason(err), token)
        host = urlsplit(endpoint).hostname or endpoint
        if any(h in reason.lower() for h in _DNS_HINTS):
            what = f"the host name {host} does not resolve (DNS: {reason})"
        elif "refused" in reason.lower():
            what = f"the connection was refused ({reason}): nothing listens there"
        else:
            what = f"{type(err).__name__}: {reason}"
        return HubPushError(f"cannot reach {where}: {what}; " + network)
    return None


def _stage(run_dir: Path, files: list[str], dest: Path) -> None:
    for rel in files:
        src, dst = run_dir / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def push_run(
    run_dir,
    repo_id: str,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    *,
    license: str = DEFAULT_LICENSE,  # noqa: A002
    include_checkpoints: bool = False,
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` (if needed) and upload the run folder; returns the commit URL.

    ``endpoint`` defaults to ``HF_ENDPOINT`` read now (huggingface_hub reads it only at import), else huggingface.co.
    Raises ``HubPushError`` for bad input (before any request) and for a Hub that cannot be reached, times out or
    refuses the token.
    """
    repo_id = check_repo_id(repo_id)
    token = resolve_token(token)
    run_dir = Path(run_dir)
    files = collect_run_files(run_dir, include_checkpoints=include_checkpoints)
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    with tempfile.TemporaryDirectory(prefix="curricula-push-") as tmp:
        stage = Path(tmp)
        _stage(run_dir, files, stage)
        files = sorted(set(files) | set(prepare_extras(run_dir, stage)))
        write_text(stage / "README.md", render_card(run_dir, repo_id, files, license=license))
        try:
            url = api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
            target = getattr(url, "repo_id", None) or repo_id
            with warnings.catch_warnings():  # the Parquet / Arrow logs are meant for the model repo
                warnings.filterwarnings("ignore", message=".*commit a data file.*", category=UserWarning)
                info = api.upload_folder(folder_path=stage, repo_id=target, repo_type="model", revision=revision,
                                         commit_message=commit_message)
        except Exception as err:  # noqa: BLE001 - only the Hub's failures are translated; the rest re-raises
            failure = hub_failure(err, api.endpoint, repo_id, token)
            if failure is None:
                raise
            raise failure from None  # the client's chain can name request details; the message says it all
    return str(getattr(info, "commit_url", info))


# ---- the card a live Trainer writes -------------------------------------------------------------------------------


def _hf_dataset_defaults(trainer) -> dict:
    """As ``TrainingSummary.from_trainer``: the dataset's builder name, config and split, for a ``datasets`` dataset
    that is not a local file format."""
    one = trainer.eval_dataset if trainer.eval_dataset is not None else trainer.train_dataset
    try:
        from datasets import Dataset, IterableDataset
    except ImportError:
        return {}
    if not isinstance(one, (Dataset, IterableDataset)):
        return {}
    tag = getattr(one, "builder_name", None)
    if not tag or tag in ("csv", "json", "pandas", "parquet", "text", "arrow", "generator"):
        return {}
    return {"dataset_tags": [tag], "dataset_args": [one.config_name],
            "dataset_metadata": [{"config": one.config_name, "split": str(one.split)}]}


def _model_task(model) -> str | None:
    """The task tag of ``model``'s class, as ``TrainingSummary.from_trainer`` infers it (text-generation for a
    causal LM)."""
    try:
        from transformers.modelcard import TASK_MAPPING
    except ImportError:
        return None
    name = type(model).__name__
    for task, mapping in TASK_MAPPING.items():
        values = []
        for v in mapping.values():
            values += list(v) if isinstance(v, (tuple, list)) else [v]
        if name in values:
            return task
    return None


def trainer_card_keywords(trainer, language=None, license=None, tags=None, model_name=None,  # noqa: A002
                          finetuned_from=None, tasks=None, dataset_tags=None, dataset=None, dataset_args=None,
                          dataset_metadata=None) -> dict:
    """``create_model_card``'s keywords with Trainer's defaults filled in (``TrainingSummary.from_trainer``): the
    dataset from a ``datasets`` dataset, ``finetuned_from`` from the model's Hub name, the task from the model class,
    ``model_name`` from ``output_dir``, and the ``generated_from_trainer`` tag. The license defaults to
    ``apache-2.0`` (no Hub lookup of the base model's)."""
    defaults = _hf_dataset_defaults(trainer)
    dataset_tags = defaults.get("dataset_tags") if dataset_tags is None else dataset_tags
    dataset_args = defaults.get("dataset_args") if dataset_args is None else dataset_args
    dataset_metadata = defaults.get("dataset_metadata") if dataset_metadata is None else dataset_metadata
    if dataset is None and dataset_tags is not None:
        dataset = dataset_tags
    model = getattr(trainer, "model", None)
    name_or_path = getattr(getattr(model, "config", None), "_name_or_path", None)
    if finetuned_from is None and isinstance(name_or_path, str) and name_or_path and not os.path.isdir(name_or_path):
        finetuned_from = name_or_path
    if tasks is None and model is not None:
        tasks = _model_task(model)
    if not model_name:
        model_name = Path(trainer.args.output_dir).name or finetuned_from
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    if "generated_from_trainer" not in tags:
        tags.append("generated_from_trainer")
    return {"language": language, "license": license or DEFAULT_LICENSE, "tags": tags, "model_name": model_name,
            "finetuned_from": finetuned_from, "tasks": tasks, "dataset_tags": dataset_tags, "dataset": dataset,
            "dataset_args": dataset_args, "dataset_metadata": dataset_metadata}


def _hyperparameters(trainer) -> dict:
    """What Trainer's card adds to the arguments (``extract_hyperparameters_from_trainer``): the devices, the total
    batch sizes; and the run's real number of optimizer steps."""
    from transformers.training_args import ParallelMode

    args = trainer.args
    out: dict = {}
    if args.parallel_mode not in (ParallelMode.NOT_PARALLEL, ParallelMode.NOT_DISTRIBUTED):
        out["distributed_type"] = ("multi-GPU" if args.parallel_mode == ParallelMode.DISTRIBUTED
                                   else args.parallel_mode.value)
    if args.world_size > 1:
        out["num_devices"] = args.world_size
    total = args.train_batch_size * args.world_size * args.gradient_accumulation_steps
    if total != args.train_batch_size:
        out["total_train_batch_size"] = total
    if args.eval_batch_size * args.world_size != args.eval_batch_size:
        out["total_eval_batch_size"] = args.eval_batch_size * args.world_size
    steps = getattr(trainer.state, "max_steps", 0)
    if isinstance(steps, int) and steps > 0:
        out["optimizer steps (the run's)"] = steps
    return out


def _framework_versions() -> dict:
    out = {}
    for label, dist in (("curricula", "curricula"), ("Transformers", "transformers"), ("Pytorch", "torch"),
                        ("Datasets", "datasets"), ("Tokenizers", "tokenizers")):
        try:
            out[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def trainer_upload_files(output_dir) -> list[str]:
    """The files Trainer's ``push_to_hub`` uploads from ``output_dir`` (all but ``_*`` and ``checkpoint-*``), as
    sorted POSIX paths, README.md left out."""
    out = Path(output_dir)
    files = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel != "README.md" and not any(fnmatch(rel, pat) for pat in TRAINER_UPLOAD_IGNORE) \
                and ".git" not in p.relative_to(out).parts:
            files.append(rel)
    return files


def write_trainer_card(trainer, language=None, license=None, tags=None, model_name=None,  # noqa: A002
                       finetuned_from=None, tasks=None, dataset_tags=None, dataset=None, dataset_args=None,
                       dataset_metadata=None, **ignored) -> Path | None:
    """``CurriculumTrainer.create_model_card``: write the curricula card into ``output_dir/README.md`` (on the world
    process zero only; returns its path, else None).

    Trainer's ``push_to_hub`` calls ``create_model_card`` before uploading ``output_dir``, so the card describes what
    is uploaded: the curriculum (plan, replay, LR schedule and its plot, weights, analysis), the training
    configuration with the plan's real number of epochs (``trainer.curriculum_epochs``, else
    ``curriculum/plan.json``'s; never ``num_train_epochs`` when a plan ran) and the loss-token note, and what
    Trainer's own card has: the evaluation results and their table from ``trainer.state.log_history``, and the
    keywords (``trainer_card_keywords``) in the front matter and the text. Files are replaced atomically through
    ``_``-prefixed temporaries (Trainer's uploads skip ``_*``): a checkpoint push may be reading ``output_dir``."""
    if not trainer.is_world_process_zero():
        return None
    if ignored:
        warnings.warn(f"create_model_card: ignoring unknown keyword(s) {sorted(ignored)}", stacklevel=2)
    out = Path(trainer.args.output_dir)
    keywords = trainer_card_keywords(trainer, language=language, license=license, tags=tags, model_name=model_name,
                                     finetuned_from=finetuned_from, tasks=tasks, dataset_tags=dataset_tags,
                                     dataset=dataset, dataset_args=dataset_args, dataset_metadata=dataset_metadata)
    repo_id = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id or out.name
    history = list(trainer.state.log_history)
    out.mkdir(parents=True, exist_ok=True)
    prepare_extras(out, out, history)
    files = trainer_upload_files(out)
    config = json.loads(json.dumps(trainer.args.to_dict(), default=str))  # to_dict masks the hub token
    card = render_card(out, repo_id, files, license=keywords["license"], log_history=history, keywords=keywords,
                       plan_epochs=getattr(trainer, "curriculum_epochs", None),
                       loss_type_note=getattr(trainer, "loss_type_note", None), config=config,
                       hyperparameters=_hyperparameters(trainer), framework_versions=_framework_versions())
    return write_text(out / "README.md", card)
