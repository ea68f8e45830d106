"""LFR plans (``curricula/methods/lfr/plan.py``): bundled recipes, YAML with parameters and nested repeats, exact drop
counts, and errors that name the problem. Fast (no torch, no models)."""

import pytest

from curricula.methods.lfr import Phase, Plan, PlanError, n_dropped


def test_lfr_recipe_reps2_expands_to_the_paper_schedule():
    plan = Plan.from_recipe("lfr")
    assert plan.name == "lfr-reps2" and plan.params == {"reps": 2, "reselect": True}
    assert [(p.kind, p.epochs, p.drop_percent) for p in plan.phases] == [
        ("learn", 1, None),
        ("focus", 1, 50.0),
        ("review", 1, None),
        ("focus", 1, 70.0),
        ("focus", 1, 70.0),
    ]
    eps = plan.epochs()
    assert [(e.index, e.phase_index, e.kind, e.epoch_in_phase) for e in eps] == [
        (0, 0, "learn", 0),
        (1, 1, "focus", 0),
        (2, 2, "review", 0),
        (3, 3, "focus", 0),
        (4, 4, "focus", 0),
    ]
    assert plan.blocks_per_epoch(1000) == [1000, 500, 1000, 300, 300]
    assert plan.blocks_per_epoch(7) == [7, 7 - 3, 7, 7 - 4, 7 - 4]  # floor(3.5) = 3, floor(4.9) = 4 leave
    assert Plan.from_dict(plan.to_dict()) == plan


def test_lfr_reps5_recipe_and_keyword_override_agree():
    five = Plan.from_recipe("lfr_reps5")
    assert five.params == {"reps": 5, "reselect": True} and five.n_epochs == 8
    assert five.blocks_per_epoch(1000) == [1000, 500, 1000] + [300] * 5
    assert Plan.from_recipe("lfr", reps=5).phases == five.phases
    assert Plan.from_recipe("lfr_reps5", reps=2).phases == Plan.from_recipe("lfr").phases
    assert Plan.from_recipe("lfr", reps="3").n_epochs == 6  # a string from a command line is accepted


def test_from_yaml_path_text_nested_repeat_and_multi_epoch_phase(tmp_path):
    text = """
params: {n: 2, s: 25}
phases:
  - {kind: learn, epochs: 2}
  - repeat: "{n}"
    phases:
      - {kind: focus, epochs: 3, drop_percent: "{s}"}
      - repeat: 2
        phases: [{kind: review, epochs: 1}]
"""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    from_path, from_text = Plan.from_yaml(path, s=12.5), Plan.from_yaml(text, s=12.5)
    assert from_path.name == "mine" and from_text.name == "plan"
    assert from_path.phases == from_text.phases
    assert [p.kind for p in from_path.phases] == ["learn", "focus", "review", "review", "focus", "review", "review"]
    eps = from_path.epochs()
    assert len(eps) == from_path.n_epochs == 2 + 2 * (3 + 2)
    assert [(e.kind, e.epoch_in_phase) for e in eps[2:5]] == [("focus", 0), ("focus", 1), ("focus", 2)]
    assert from_path.blocks_per_epoch(8)[2:5] == [7, 7, 7]  # floor(8 * 12.5 / 100) = 1


def test_n_dropped_is_exact_decimal_floor():
    assert n_dropped(10, 70) == 7  # floor(10 * 0.7) in binary floating point would give 6
    assert n_dropped(1000, 33.3) == 333
    assert n_dropped(3, 33.3) == 0
    assert n_dropped(100_000_000, 70) == 70_000_000
    assert n_dropped(7, 0) == 0 and n_dropped(7, 99.99) == 6


BAD_PLANS = [
    ("phases: [{kind: learn}, {kind: focus, drop_percent: 100}]", "outside [0, 100)"),
    ("phases: [{kind: learn}, {kind: focus, drop_percent: -5}]", "outside [0, 100)"),
    ("phases: [{kind: learn}, {kind: focus, epochs: 1}]", "needs drop_percent"),
    ("phases: [{kind: learn, drop_percent: 50}]", "only allowed on focus phases"),
    ("phases: [{kind: learn}, {kind: review, drop_percent: 10}]", "phases[1]: review phase: drop_percent=10"),
    ("phases: [{kind: learn, epochs: 0}]", "epochs=0 must be a positive integer"),
    ("phases: [{kind: learn, epochs: -2}]", "epochs=-2 must be a positive integer"),
    ("phases: [{kind: learn, epochs: 1.5}]", "epochs=1.5 must be a positive integer"),
    ("phases: [{kind: lern}]", "unknown phase kind 'lern'; valid kinds: learn, focus, review"),
    ("phases: []", "has no phases"),
    ("name: x", "has no phases"),
    ("", "the plan is empty"),
    ("phases: [{kind: focus, drop_percent: 50}]", "no block has a perplexity yet"),
    ("phases: [{kind: learn, epochs: '{ep}'}]", "unknown parameter {ep}"),
    (
        "params: {reps: 2}\nphases: [{kind: learn}, {repeat: '{rep}', phases: [{kind: review}]}]",
        "unknown parameter {rep}",
    ),
    ("phases: [{kind: learn}, {repeat: 0, phases: [{kind: review}]}]", "repeat=0 must be a positive integer"),
    ("phases: [{kind: learn, epoch: 1}]", "unknown key(s) ['epoch']"),
    ("phases: [{epochs: 1}]", "missing kind"),
    ("phases: [{kind: learn}, {repeat: 2, phases: [{kind: focus, drop_percent: 150}]}]", "phases[1].phases[0]"),
    ("phases: [{kind: learn]", "not valid YAML"),
]


@pytest.mark.parametrize("text,message", BAD_PLANS)
def test_bad_plan_names_the_problem(text, message):
    with pytest.raises(PlanError) as e:
        Plan.from_yaml(text)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_bad_plan_keyword_and_file_and_recipe():
    with pytest.raises(PlanError, match=r"unknown parameter\(s\) \['rep'\].*declares \['reps', 'reselect'\]"):
        Plan.from_recipe("lfr", rep=3)
    with pytest.raises(PlanError, match="not found"):
        Plan.from_yaml("/nonexistent/plan.yaml")
    with pytest.raises(PlanError, match="no bundled recipe 'lfx'; available: .*lfr"):
        Plan.from_recipe("lfx")
    with pytest.raises(PlanError, match="valid kinds"):
        Phase("warmup", 1)
    with pytest.raises(PlanError, match="starts with a focus phase"):
        Plan("p", [Phase("focus", 1, 10)])


def test_other_methods_recipes_are_not_plans():
    from curricula.methods.lfr.plan import Plan, PlanError

    with pytest.raises(PlanError, match=r"recipe 'doremi' is a doremi recipe, not a curriculum plan; run it with `curricula doremi"):
        Plan.from_recipe("doremi")
    with pytest.raises(PlanError, match="continual recipe"):
        Plan.from_recipe("continual_replay")
