"""Declarative curriculum plans: a list of phases (learn / focus / review), each run for some epochs.

A plan is data, not code, so a run can store it in its checkpoint (``to_dict``), and the trainer glue can size the LR
schedule from the exact number of blocks each epoch trains (``blocks_per_epoch``) instead of assuming full epochs.

YAML form (``Plan.from_yaml``)::

    name: lfr-reps{reps}          # "{param}" inside a string is formatted
    params: {reps: 2}             # defaults; keyword arguments override them
    phases:
      - {kind: learn, epochs: 1}
      - {kind: focus, epochs: 1, drop_percent: 50}
      - {kind: review, epochs: 1}
      - repeat: "{reps}"          # a value that is exactly "{param}" takes the parameter's value (and type)
        reselect: true            # each repetition re-decides its set (false: decide once, train it every time)
        phases:
          - {kind: focus, epochs: 1, drop_percent: 70}

``reselect: false`` is the reading of a repeated focus in which the hardest blocks are selected once and that set is
trained for every repetition (as the third-party LFR implementation does); the block must then hold one focus
phase, and it expands to that phase with ``epochs`` times ``repeat`` epochs (a focus phase decides at its first
epoch only). ``true`` (the default) expands to ``repeat`` separate focus phases, each decided from the latest
perplexities of all blocks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from curricula.errors import ConfigError

PhaseKind = Literal["learn", "focus", "review"]
KINDS: tuple[str, ...] = ("learn", "focus", "review")

_PHASE_KEYS = ("kind", "epochs", "drop_percent")
_REPEAT_KEYS = ("repeat", "phases", "reselect")
_PLAN_KEYS = ("name", "params", "phases")
_WHOLE = re.compile(r"^\{(\w+)\}$")
_ANY = re.compile(r"\{(\w+)\}")


class PlanError(ConfigError):
    """Bad plan input; the message names the problem and the fix."""


def n_dropped(n_blocks: int, drop_percent: float) -> int:
    """``floor(n * s / 100)``, computed exactly.

    ``s`` is read as the decimal it is written as (``repr``), so 10 blocks at 70 % drop 7, not the 6 that
    ``floor(10 * 0.7)`` gives in binary floating point. Shared by ``Plan.blocks_per_epoch`` and ``select_focus`` so
    the LR schedule and the selection can never disagree.
    """
    return int((n_blocks * Fraction(repr(float(drop_percent)))) // 100)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Phase:
    """One phase: ``kind`` for ``epochs`` epochs. ``drop_percent`` (focus only) is the share of blocks with the LOWEST
    perplexity that the phase leaves out, in [0, 100)."""

    kind: PhaseKind
    epochs: int = 1
    drop_percent: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise PlanError(f"unknown phase kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if not _is_int(self.epochs) or self.epochs <= 0:
            raise PlanError(f"{self.kind} phase: epochs={self.epochs!r} must be a positive integer, e.g. epochs: 1")
        s = self.drop_percent
        if self.kind == "focus":
            if s is None:
                raise PlanError(
                    "focus phase needs drop_percent, the share of lowest-perplexity blocks to drop, in [0, 100); "
                    "e.g. drop_percent: 50"
                )
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 100:
                raise PlanError(
                    f"focus phase: drop_percent={s!r} is outside [0, 100); it is the share of lowest-perplexity "
                    "blocks to drop (70 keeps the hardest 30 %), so use a number such as 50"
                )
            object.__setattr__(self, "drop_percent", float(s))
        elif s is not None:
            raise PlanError(
                f"{self.kind} phase: drop_percent={s!r} is only allowed on focus phases ({self.kind} trains every "
                "block); remove it or make the phase a focus"
            )

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind, "epochs": self.epochs}
        if self.drop_percent is not None:
            d["drop_percent"] = self.drop_percent
        return d


@dataclass(frozen=True)
class PhaseEpoch:
    """One epoch of a plan, in run order. ``index`` is the global epoch counter (seeds the block order and is what
    ``IndexTable.update`` records as ``last_epoch``); ``epoch_in_phase`` 0 is where a focus phase is decided."""

    index: int
    phase_index: int
    kind: PhaseKind
    epoch_in_phase: int
    drop_percent: float | None = None

    @property
    def starts_phase(self) -> bool:
        return self.epoch_in_phase == 0

    @property
    def phase(self) -> str:
        """The curriculum log's ``phase`` label (``EpochLabel.phase``)."""
        return self.kind


@dataclass(frozen=True)
class Plan:
    """A named sequence of phases (already expanded: no repeats or parameters left). ``params`` records the parameter
    values it was built with, for provenance only."""

    name: str
    phases: tuple[Phase, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "phases", tuple(self.phases))
        object.__setattr__(self, "params", dict(self.params))
        if not self.phases:
            raise PlanError(
                f"plan {self.name!r} has no phases; add at least one, e.g. phases: [{{kind: learn, epochs: 1}}]"
            )
        for i, p in enumerate(self.phases):
            if not isinstance(p, Phase):
                raise PlanError(f"plan {self.name!r}: phases[{i}] is a {type(p).__name__}, not a Phase")
        if self.phases[0].kind == "focus":
            raise PlanError(
                f"plan {self.name!r} starts with a focus phase, but no block has a perplexity yet: focus ranks "
                "blocks by the perplexity recorded in an earlier learn or review epoch; start with a learn phase"
            )

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **params: Any) -> Plan:
        """Build from the YAML structure: substitute ``{param}`` (keywords override ``params:`` defaults), expand
        ``repeat`` blocks, validate every phase (errors say where, e.g. ``phases[3].phases[0]``)."""
        if data is None:
            raise PlanError("the plan is empty; it needs phases, e.g. phases: [{kind: learn, epochs: 1}]")
        if not isinstance(data, Mapping):
            raise PlanError(f"a plan must be a mapping with keys {list(_PLAN_KEYS)}, got {type(data).__name__}")
        if data.get("method", "lfr") != "lfr":
            raise PlanError(f"a {data['method']} recipe is not a curriculum plan; load it with "
                            "curricula.recipes.load_recipe")
        unknown = sorted(set(data) - set(_PLAN_KEYS) - {"method"})
        if unknown:
            raise PlanError(f"plan: unknown key(s) {unknown}; valid keys: {', '.join(_PLAN_KEYS)}")
        declared = data.get("params") or {}
        if not isinstance(declared, Mapping):
            raise PlanError(f"plan: params must be a mapping of name: default, got {declared!r}")
        extra = sorted(set(params) - set(declared))
        if extra:
            raise PlanError(
                f"unknown parameter(s) {extra}: the plan declares {sorted(declared) or 'none'}; "
                "declare it under params: with a default, or fix the spelling"
            )
        values = {**declared, **params}
        name = _subst(data.get("name", "plan"), values, "name")
        phases = _expand(data.get("phases") or [], values, "phases")
        return cls(name=str(name), phases=tuple(phases), params=values)

    @classmethod
    def from_yaml(cls, source: str | os.PathLike, **params: Any) -> Plan:
        """From a YAML file path or YAML text. A file's stem is the default name."""
        text, default_name = _read_source(source)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise PlanError(f"the plan is not valid YAML: {e}") from None
        if isinstance(data, Mapping) and default_name and "name" not in data:
            data = {"name": default_name, **data}
        return cls.from_dict(data, **params)

    @classmethod
    def from_recipe(cls, name: str, **params: Any) -> Plan:
        """A bundled recipe from ``curricula/recipes`` by name, e.g. ``Plan.from_recipe("lfr", reps=5)``."""
        from curricula.recipes import RECIPES_DIR

        path = RECIPES_DIR / f"{name}.yaml"
        if not path.is_file():
            have = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
            raise PlanError(f"no bundled recipe {name!r}; available: {', '.join(have) or 'none'}")
        method = (yaml.safe_load(path.read_text()) or {}).get("method")
        if method not in (None, "lfr"):  # the recipes folder also holds the other methods' recipes
            raise PlanError(
                f"recipe {name!r} is a {method} recipe, not a curriculum plan; run it with "
                f"`curricula {method} ...` (see the comment at the top of {path.name})"
            )
        return cls.from_yaml(path, **params)

    def to_dict(self) -> dict:
        """Expanded and JSON-able; ``Plan.from_dict(plan.to_dict())`` gives the same plan."""
        return {"name": self.name, "params": dict(self.params), "phases": [p.to_dict() for p in self.phases]}

    # ---- schedule -----------------------------------------------------------------------------------------------

    @property
    def n_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def epochs(self) -> list[PhaseEpoch]:
        """Every epoch in run order."""
        out, i = [], 0
        for pi, p in enumerate(self.phases):
            for e in range(p.epochs):
                out.append(PhaseEpoch(i, pi, p.kind, e, p.drop_percent))
                i += 1
        return out

    def blocks_per_epoch(self, n_blocks: int) -> list[int]:
        """Blocks trained in each epoch: all of them, or ``n - floor(n*s/100)`` in a focus epoch. Exact unless a focus
        finds fewer blocks with a finite perplexity than it should drop (``FocusReport.shortfall`` says so)."""
        if not _is_int(n_blocks) or n_blocks < 0:
            raise PlanError(f"n_blocks={n_blocks!r} must be a non-negative integer")
        return [
            n_blocks - n_dropped(n_blocks, e.drop_percent) if e.kind == "focus" else n_blocks for e in self.epochs()
        ]


# ---- helpers --------------------------------------------------------------------------------------------------------


def _read_source(source: str | os.PathLike) -> tuple[str, str | None]:
    looks_like_path = isinstance(source, str) and "\n" not in source
    if isinstance(source, os.PathLike) or (
        looks_like_path and (source.endswith((".yaml", ".yml")) or os.path.isfile(source))
    ):
        path = Path(source)
        if not path.is_file():
            raise PlanError(f"plan file {str(path)!r} not found; pass a YAML path, YAML text, or use Plan.from_recipe")
        return path.read_text(), path.stem
    if not isinstance(source, str):
        raise PlanError(f"Plan.from_yaml takes a path or YAML text, got {type(source).__name__}")
    return source, None


def _subst(value: Any, params: Mapping[str, Any], where: str) -> Any:
    """``"{p}"`` → the value of p (any type); ``"..{p}.."`` → formatted string; other values unchanged."""
    if not isinstance(value, str):
        return value

    def lookup(name: str) -> Any:
        if name not in params:
            raise PlanError(
                f"{where}: unknown parameter {{{name}}}; declared: {sorted(params) or 'none'} "
                "(declare it under params: with a default, or pass it as a keyword)"
            )
        return params[name]

    m = _WHOLE.match(value)
    if m:
        return lookup(m.group(1))
    return _ANY.sub(lambda mm: str(lookup(mm.group(1))), value)


def _number(value: Any, where: str, key: str) -> Any:
    """Parameters passed as strings (e.g. from a command line) become numbers where a number is expected."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise PlanError(f"{where}: {key}={value!r} is not a number") from None
    return value


def _flag(value: Any, where: str) -> bool:
    """A yes/no plan value; parameters passed as strings (a command line) are read as YAML booleans."""
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        value = value.lower() in ("true", "yes")
    if not isinstance(value, bool):
        raise PlanError(f"{where}={value!r} must be true or false")
    return value


def _expand(items: Any, params: Mapping[str, Any], where: str) -> list[Phase]:
    if not isinstance(items, list):
        raise PlanError(f"{where} must be a list of phases, got {items!r}")
    out: list[Phase] = []
    for i, item in enumerate(items):
        loc = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise PlanError(f"{loc} must be a mapping such as {{kind: learn, epochs: 1}}, got {item!r}")
        if "repeat" in item:
            unknown = sorted(set(item) - set(_REPEAT_KEYS))
            if unknown:
                raise PlanError(f"{loc}: unknown key(s) {unknown} in a repeat block; valid keys: "
                                f"{', '.join(_REPEAT_KEYS)}")
            n = _number(_subst(item["repeat"], params, f"{loc}.repeat"), loc, "repeat")
            if not _is_int(n) or n <= 0:
                raise PlanError(f"{loc}: repeat={n!r} must be a positive integer (how many times to run its phases)")
            inner = _expand(item.get("phases"), params, f"{loc}.phases")
            if not inner:
                raise PlanError(f"{loc}: repeat block has no phases; add some under phases:")
            if _flag(_subst(item.get("reselect", True), params, f"{loc}.reselect"), f"{loc}.reselect"):
                out.extend(inner * n)
            elif len(inner) == 1 and inner[0].kind == "focus":  # selected once: one phase, decided at its start
                out.append(Phase("focus", inner[0].epochs * n, inner[0].drop_percent))
            else:
                raise PlanError(f"{loc}: reselect: false repeats one focus phase with the same set; this block has "
                                f"{[p.kind for p in inner]}; keep one focus phase in it, or drop reselect")
            continue
        unknown = sorted(set(item) - set(_PHASE_KEYS))
        if unknown:
            raise PlanError(
                f"{loc}: unknown key(s) {unknown}; valid keys: {', '.join(_PHASE_KEYS)} (or repeat, phases)"
            )
        if "kind" not in item:
            raise PlanError(f"{loc}: missing kind; valid kinds: {', '.join(KINDS)}")
        kw = {k: _subst(v, params, f"{loc}.{k}") for k, v in item.items()}
        for key in ("epochs", "drop_percent"):
            if key in kw and kw[key] is not None:
                kw[key] = _number(kw[key], loc, key)
        try:
            out.append(Phase(**kw))
        except PlanError as e:
            raise PlanError(f"{loc}: {e}") from None
    return out
