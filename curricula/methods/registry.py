"""Methods and pipelines by name: what a recipe's ``method:`` key resolves to.

Three ways a method becomes available, tried in this order:

1. **bundled or imported**: a ``MethodConfig`` decorated ``@register("name")`` (``curricula.methods`` imports the
   bundled ones: lfr, mixture, replay, group_dro, doremi_online, odm, ado, aioli);
2. **a spec**: ``method: package.module:ConfigClass`` in a recipe imports that module and takes the class; it need not
   be registered (its recipe name is then the spec itself, so a resumed run or a model card finds it again);
3. **an installed package**: an entry point in the group ``curricula.methods`` (``ENTRY_POINT_GROUP``), e.g. in the
   package's ``pyproject.toml``::

       [project.entry-points."curricula.methods"]
       my_mixer = "my_package.mixer:MyMixerConfig"

   makes ``method: my_mixer`` work in every recipe once the package is installed.

Pipelines (several training runs: ``doremi``, ``continual``) are registered with ``@register_pipeline``.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Mapping
from typing import Any

from curricula.errors import ConfigError
from curricula.methods.seam import MethodConfig, MethodError

ENTRY_POINT_GROUP = "curricula.methods"

METHODS: dict[str, type[MethodConfig]] = {}
PIPELINES: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a ``MethodConfig`` available to recipes as ``method: name``."""

    def deco(cls: type[MethodConfig]) -> type[MethodConfig]:
        _check_free(name, cls)
        cls.method = name
        METHODS[name] = cls
        return cls

    return deco


def register_pipeline(name: str):
    """Class decorator: a multi-run pipeline's recipe (a dataclass with ``from_dict``) as ``method: name``."""

    def deco(cls: type) -> type:
        _check_free(name, cls)
        cls.method = name
        PIPELINES[name] = cls
        return cls

    return deco


def _check_free(name: str, cls: type) -> None:
    taken = METHODS.get(name) or PIPELINES.get(name)
    if taken is not None and taken is not cls:
        raise MethodError(f"method {name!r} is registered twice ({taken.__module__}.{taken.__name__}, "
                          f"{cls.__module__}.{cls.__name__}); give one of them another name")


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_spec(spec: str) -> type:
    """``package.module:ConfigClass`` → the class (a MethodConfig subclass or a registered pipeline recipe)."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"method {spec!r}: cannot import module {module_name!r} ({err}); install the package that "
                          "defines it, or put its folder on PYTHONPATH") from None
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"method {spec!r}: module {module_name!r} has no {attr!r}; name the method's config "
                              "class, e.g. my_package.mixer:MyMixerConfig")
    if not (isinstance(obj, type) and (issubclass(obj, MethodConfig) or obj in PIPELINES.values())):
        raise ConfigError(f"method {spec!r} is {obj!r}, not a curricula MethodConfig subclass; a method is a dataclass "
                          "deriving from curricula.methods.MethodConfig whose build() returns a Curriculum")
    if issubclass(obj, MethodConfig) and obj not in METHODS.values():
        obj.method = spec  # unregistered: its recipe name is the spec, which finds it again
    return obj


def lookup(name: str) -> type:
    """The config class (or pipeline recipe class) of a recipe's ``method:``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"method {name!r}: give a method name (e.g. lfr, mixture, doremi) or package.module:Class")
    if name in METHODS:
        return METHODS[name]
    if name in PIPELINES:
        return PIPELINES[name]
    if ":" in name:
        return _load_spec(name)
    installed = _entry_points()
    if name in installed:
        cls = _load_spec(installed[name])
        if cls.method != name:
            register(name)(cls)
        return cls
    known = sorted({*METHODS, *PIPELINES, *installed})
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    raise ConfigError(f"unknown method {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                      + f"; registered methods: {', '.join(known)}; a method from your own package: "
                      "method: package.module:ConfigClass")


def method_config(name: str) -> type[MethodConfig]:
    """The ``MethodConfig`` class of a one-run method (a pipeline name is refused with the command that runs it)."""
    cls = lookup(name)
    if cls in PIPELINES.values():
        raise ConfigError(f"method {name!r} is a pipeline of several training runs, not a method of one run; run it "
                          f"with `curricula {name} ...`")
    return cls


def is_pipeline(config: Any) -> bool:
    return isinstance(config, tuple(PIPELINES.values()))


def load_recipe(spec: str | os.PathLike | Mapping, **params: Any):
    """A method config (one training run) or a pipeline recipe, from a bundled name, a path, YAML text or a mapping;
    ``params`` override the recipe's keys."""
    from curricula.recipes import read_recipe

    data = read_recipe(spec)
    return lookup(data["method"]).from_dict(data, **params)
