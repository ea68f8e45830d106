"""Recipes: the bundled YAML files in this folder, and the one loader for every recipe.

A recipe names its method (``method: lfr``, ``mixture``, ``group_dro``, ``doremi_online``, ... for one training run;
``method: doremi`` or ``continual`` for a multi-run pipeline); a plan with ``phases`` and no ``method`` is LFR.
``read_recipe`` accepts a bundled name (``lfr``, ``doremi``), a path, YAML text or a mapping, from any working
directory; ``curricula.methods.load_recipe`` turns it into the method's config (``MethodConfig``) or the pipeline's
recipe. This module knows files, not methods.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from curricula.errors import ConfigError

RECIPES_DIR = Path(__file__).resolve().parent


def bundled() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(spec: str | os.PathLike) -> Path:
    """A bundled recipe name or a YAML path; an unknown name says which exist (and the closest one)."""
    path = Path(spec)
    if path.is_file():
        return path
    if isinstance(spec, str) and "/" not in spec and not spec.endswith((".yaml", ".yml")):
        candidate = RECIPES_DIR / f"{spec}.yaml"
        if candidate.is_file():
            return candidate
        close = difflib.get_close_matches(spec, bundled(), n=1, cutoff=0.6)
        raise ConfigError(f"no bundled recipe {spec!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                          + f"; bundled: {', '.join(bundled())}; or give the path of a recipe YAML file")
    raise ConfigError(f"recipe file {str(spec)!r} not found; give a bundled name ({', '.join(bundled())}) or an "
                      "existing YAML path")


def read_recipe(spec: str | os.PathLike | Mapping) -> dict:
    """The recipe as a mapping with its ``method`` filled in (``lfr`` for a plan)."""
    if isinstance(spec, Mapping):
        data, where = dict(spec), "recipe"
    else:
        text = str(spec)
        if "\n" in text or text.lstrip().startswith("{"):  # inline YAML/JSON
            where, body = "inline recipe", text
        else:
            path = recipe_path(spec)
            where, body = str(path), path.read_text()
        try:
            data = yaml.safe_load(body) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{where} is not valid YAML: {err}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys (method: ..., ...), got {type(data).__name__}")
        data = dict(data)
        if "name" not in data and where not in ("recipe", "inline recipe") and "phases" in data:
            data["name"] = Path(where).stem
    if "method" not in data:
        if "phases" in data:
            data["method"] = "lfr"
        else:
            raise ConfigError("the recipe does not say its method: add e.g. `method: lfr` (or mixture, group_dro, "
                              "doremi_online, doremi, continual)")
    return data
