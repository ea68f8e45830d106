"""Domain weights: what a user may write for them, and the weights file a method writes and another run reads.

* ``resolve_weights``: 'uniform' | 'token_proportional' | a list in domain order | {domain: weight} | a weights file,
  to a float64 vector in the data's domain order (every error names the flag or key it came from);
* ``weights_json`` / ``read_weights_json``: the weights file (``domain_weights.json``): domains in order, one weight
  each, and the tokenizer identity (weights learned from per-token losses are tokenizer-specific, so a file computed
  with another vocabulary is refused);
* ``l1_change``: how far weights moved (DoReMi rounds; 0 = converged).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.mixing.mixer import MixingError, check_weights

WEIGHTS_FORMAT = "curricula-domain-weights/1"


class WeightsError(MixingError):
    """A weights file that cannot be used (unreadable, other domains, another tokenizer); the message says why."""


WeightsSpec = str | Sequence[float] | Mapping[str, float] | np.ndarray
NAMED_WEIGHTS = ("uniform", "token_proportional")


def resolve_weights(spec: WeightsSpec, names: Sequence[str], blocks_per_domain: np.ndarray | None = None,
                    what: str = "domain_weights") -> np.ndarray:
    """'uniform' | 'token_proportional' (packed blocks have equal length: proportional to blocks) | a list in domain
    order | a mapping {domain: weight} | a weights JSON file (DoReMi's ``domain_weights.json``) → float64 weights,
    one per domain of ``names``. Every error names ``what``."""
    names = list(names)
    spec = parse_weights_arg(spec, what)
    if isinstance(spec, str):
        if spec == "uniform":
            return np.full(len(names), 1.0 / len(names))
        if spec == "token_proportional":
            if blocks_per_domain is None:
                raise ConfigError(f"{what}='token_proportional' needs the data's block counts")
            b = np.asarray(blocks_per_domain, dtype=np.float64)
            return b / b.sum()
        return read_weights_json(spec, names)
    if isinstance(spec, Mapping):
        missing, extra = sorted(set(names) - set(spec)), sorted(set(spec) - set(names))
        if missing or extra:
            raise ConfigError(f"{what} names {sorted(spec)} do not match the data's domains {names}: "
                              f"missing {missing}, unknown {extra}")
        spec = [spec[n] for n in names]
    try:
        return check_weights(np.asarray(spec, dtype=np.float64), names)
    except MixingError as err:
        raise MixingError(f"{what}: {err}") from None


def parse_weights_arg(value: Any, flag: str = "domain_weights") -> Any:
    """A weights argument checked as far as it can be without the data: JSON parsed, lists checked, names and files
    kept for ``resolve_weights``. Errors name the flag."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if text in NAMED_WEIGHTS:
            return text
        if text[:1] in "[{":
            import json

            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"--{flag} {text!r} is not valid JSON ({err.msg} at column {err.colno}); give "
                                  "'uniform', a list like [0.5, 0.5] or an object like {\"code\": 0.5, ...}") from None
        elif Path(text).is_file():
            return text
        else:
            close = _closest(text, [*NAMED_WEIGHTS])
            raise ConfigError(
                f"--{flag} {text!r} is not a weights file, JSON or one of {list(NAMED_WEIGHTS)}"
                + (f" (did you mean {close!r}?)" if close else "")
                + "; give 'uniform', 'token_proportional', a JSON list in domain order, a JSON object "
                "{domain: weight} or the path of a weights file (DoReMi's domain_weights.json)")
    if isinstance(value, Mapping):
        check_weights(list(value.values()))
        return {str(k): float(v) for k, v in value.items()}
    try:
        return check_weights(value).tolist()
    except MixingError as err:
        raise MixingError(f"--{flag}: {err}") from None


def _closest(word: str, options: Sequence[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return hits[0] if hits else None




# ---- the weights file ---------------------------------------------------------------------------------------------


def _identity_dict(identity) -> dict:
    """A tokenizer identity as a dict: accepts a dict or an object with ``to_dict()`` (``TokenizerIdentity``)."""
    if isinstance(identity, dict):
        return dict(identity)
    if hasattr(identity, "to_dict"):
        return identity.to_dict()
    raise WeightsError(
        f"tokenizer_identity must be a dict or a TokenizerIdentity, got {type(identity).__name__}; "
        "pass tokenizer.identity"
    )


def _check_names(domain_names) -> list[str]:
    names = [str(x) for x in domain_names]
    if len(set(names)) != len(names):
        raise WeightsError(f"domain names {names} repeat; give each domain a distinct name")
    return names


def weights_json(weights, domain_names, tokenizer_identity: dict | None, extra: dict | None = None) -> dict:
    """The weights file's content: domains in order, weight per domain, the tokenizer identity (weights learned from
    per-token losses are tokenizer-specific; None when the data has none, and a reader that asks for one refuses
    the file) and caller metadata under ``extra`` (eta, steps, proxy model, ...)."""
    names = _check_names(domain_names)
    try:
        w = check_weights(weights, names)
    except MixingError as e:
        raise WeightsError(str(e)) from None
    tok = None if tokenizer_identity is None else _identity_dict(tokenizer_identity)
    if tok is not None and not tok.get("vocab_sha256"):
        raise WeightsError("tokenizer_identity has no 'vocab_sha256'; pass tokenizer.identity (or its to_dict())")
    return {
        "format": WEIGHTS_FORMAT,
        "domains": names,
        "weights": {name: float(x) for name, x in zip(names, w)},
        "tokenizer": tok,
        "extra": dict(extra or {}),
    }


def read_weights_json(path, domain_names, tokenizer_identity=None) -> np.ndarray:
    """Weights from a file written from ``weights_json`` (or a plain ``{domain: weight}`` object, as the official
    DoReMi writes), in the order of ``domain_names``. The file must name exactly these domains. With
    ``tokenizer_identity`` the file's tokenizer must have the same ``vocab_sha256``."""
    path = Path(path)
    names = _check_names(domain_names)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"cannot read domain weights from {path}: {e}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a domain-weights object ({{domain: weight}} or a curricula weights file)")
    table = data.get("weights") if "format" in data else data
    if not isinstance(table, dict):
        raise WeightsError(f"{path} has no 'weights' object mapping domain names to weights")
    missing = [x for x in names if x not in table]
    unknown = [x for x in table if x not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unknown:
            parts.append(f"extra {unknown}")
        raise WeightsError(
            f"{path} has weights for other domains than this run ({'; '.join(parts)}); the weights must be computed "
            "on the same domain set: learn them again on these domains (e.g. rerun DoReMi) or fix the domain list"
        )
    if tokenizer_identity is not None:
        want = _identity_dict(tokenizer_identity)
        have = data.get("tokenizer") if "format" in data else None
        if not isinstance(have, dict) or not have.get("vocab_sha256"):
            raise WeightsError(
                f"{path} records no tokenizer, so it cannot be checked against {want.get('name')!r}; learned domain "
                "weights are tokenizer-specific: use weights written by weights_json, or pass tokenizer_identity=None to "
                "skip the check"
            )
        if have["vocab_sha256"] != want.get("vocab_sha256"):
            raise WeightsError(
                f"{path} was computed with tokenizer {have.get('name')!r} (vocab_sha256 {have['vocab_sha256']}), "
                f"this run uses {want.get('name')!r} (vocab_sha256 {want.get('vocab_sha256')}); learned domain weights "
                "are tokenizer-specific (the losses they come from are per token): recompute them with this tokenizer"
            )
    try:
        return check_weights([table[x] for x in names], names)
    except MixingError as e:
        raise WeightsError(f"{path}: {e}") from None


def write_weights_json(path, content: dict) -> Path:
    """Write ``weights_json(...)`` output atomically (``curricula.run_layout``)."""
    from curricula.run_layout import write_json

    return write_json(path, content)


def l1_change(a, b) -> float:
    """sum |a - b|: how far the weights moved (e.g. between DoReMi rounds; 0 = converged)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise WeightsError(f"l1_change needs two 1-D weight vectors of the same length, got {x.shape} and {y.shape}")
    return float(np.abs(x - y).sum())
