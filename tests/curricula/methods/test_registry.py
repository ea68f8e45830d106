"""Methods and recipes by name (``curricula/methods/registry.py``): every bundled recipe through one loader, errors
that name the fix, ``module:Class`` specs that are not methods."""

import pytest

from curricula.errors import ConfigError, CurriculaError
from curricula.methods import METHODS, DoReMiOnlineConfig, LFRConfig, load_recipe, method_config
from curricula.recipes import bundled


def test_every_bundled_recipe_loads_through_one_loader():
    for name in bundled():
        config = load_recipe(name)
        assert config is not None
    assert set(METHODS) >= {"lfr", "mixture", "replay", "group_dro", "doremi_online"}
    assert isinstance(load_recipe("lfr_doremi"), LFRConfig) and load_recipe("lfr_doremi").mixture is not None
    assert load_recipe("doremi_online").mode == "online"


def test_recipe_errors_name_the_fix():
    with pytest.raises(ConfigError, match=r"no bundled recipe 'lfx' \(did you mean 'lfr'\?\)"):
        load_recipe("lfx")
    with pytest.raises(ConfigError, match="unknown method 'lfq' .*registered methods: .*lfr"):
        method_config("lfq")
    with pytest.raises(ConfigError, match=r"mixture recipe: unknown key\(s\) \['weight'\]"):
        load_recipe({"method": "mixture", "weight": "uniform"})
    with pytest.raises(ConfigError, match="sample_from='latest'"):
        DoReMiOnlineConfig(sample_from="latest")
    assert issubclass(ConfigError, CurriculaError) and issubclass(CurriculaError, ValueError)


def test_a_spec_that_is_not_a_method_is_refused_with_the_fix(tmp_path):
    import pytest

    from curricula.errors import ConfigError
    from curricula.methods import load_recipe

    with pytest.raises(ConfigError, match=r"cannot import module 'no_such_pkg.mod' \(No module named 'no_such_pkg'\)"):
        load_recipe({"method": "no_such_pkg.mod:Config"})
    with pytest.raises(ConfigError, match="has no 'Nope'"):
        load_recipe({"method": "curricula.methods.mixture:Nope"})
    with pytest.raises(ConfigError, match="not a curricula MethodConfig subclass"):
        load_recipe({"method": "curricula.methods.mixture:FixedMixture"})
