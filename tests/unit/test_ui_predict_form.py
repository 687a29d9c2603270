"""The predict page's form: controls built from a spec, posted text read back as JSON values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabops.errors import Problem
from tabops.model.reference_stats import build_reference_stats
from tabops.schema import FeatureSpec
from tabops.server.ui.predict_form import (
    build_fields,
    problems_by_field,
    range_hints,
    record_from_form,
)
from tabops.validation import FeatureValidator

DASH = "\N{EN DASH}"
SPEC = FeatureSpec.model_validate(
    {
        "columns": [
            {"name": "age", "kind": "numeric", "minimum": 40, "maximum": 95},
            {"name": "visits", "kind": "integer", "nullable": True, "minimum": 0, "maximum": 12},
            {"name": "smoker", "kind": "boolean"},
            {"name": "plan", "kind": "categorical", "categories": ["basic", "gold"]},
            {"name": "note", "kind": "text", "nullable": True},
            {"name": "label", "kind": "boolean", "role": "target"},
        ]
    }
)


def form(**values: str) -> dict[str, str]:
    return {f"feature:{name}": value for name, value in values.items()}


def test_posted_text_becomes_the_values_the_api_takes():
    record = record_from_form(
        SPEC, form(age="61.5", visits="3", smoker="true", plan="gold", note=" hi ")
    )
    assert record == {"age": 61.5, "visits": 3, "smoker": 1, "plan": "gold", "note": "hi"}
    assert type(record["visits"]) is int
    assert record_from_form(SPEC, form(age="70", smoker="0"))["smoker"] == 0
    assert type(record_from_form(SPEC, form(age="70"))["age"]) is int


def test_empty_values_are_missing_and_absent_fields_stay_absent():
    record = record_from_form(SPEC, form(age="", visits="  ", plan=""))
    assert record == {"age": None, "visits": None, "plan": None}


def test_empty_overrides_are_left_out_so_stored_values_stand():
    record = record_from_form(SPEC, form(age="", visits="4", plan=""), overrides=True)
    assert record == {"visits": 4}


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("age", "abc", "'abc' is not a number"),
        ("age", "1_000", "'1_000' is not a number"),
        ("age", "nan", "nan is not a number"),
        ("visits", "2.5", "2.5 is not a whole number"),
        ("smoker", "maybe", "'maybe' is not 0, 1, true or false"),
    ],
)
def test_text_that_is_not_the_kind_expected_is_left_for_the_validator(name, text, problem):
    values = {"age": "50", "smoker": "1", "plan": "basic", name: text}
    record = record_from_form(SPEC, form(**values))
    _valid, problems = FeatureValidator(SPEC).check_record(record)
    assert problems == [Problem(name, problem)]


def test_each_feature_gets_a_control_of_its_kind_with_the_record_shown():
    record = {"age": 61.0, "visits": None, "smoker": 1, "plan": "gold", "note": "x"}
    fields = build_fields(SPEC, record, hints={"age": f"seen 40 {DASH} 95"})
    assert [f.feature for f in fields] == ["age", "visits", "smoker", "plan", "note"]
    assert len({f.input_id for f in fields}) == 5
    age, visits, smoker, plan, note = fields
    assert (age.control, age.step, age.value, age.hint) == (
        "number",
        "any",
        "61",
        f"seen 40 {DASH} 95",
    )
    assert (visits.control, visits.step, visits.value, visits.is_optional) == (
        "number",
        "1",
        "",
        True,
    )
    assert (smoker.control, smoker.value) == ("select", "1")
    assert smoker.options == (("0", "false"), ("1", "true"))
    assert plan.options == (("basic", "basic"), ("gold", "gold"))
    assert (note.control, note.field_name) == ("text", "feature:note")


def test_a_select_keeps_a_value_outside_its_options_and_offers_missing_when_nullable():
    spec = FeatureSpec.model_validate(
        {
            "columns": [
                {"name": "plan", "kind": "categorical", "categories": ["a"], "nullable": True}
            ]
        }
    )
    [plan] = build_fields(spec, {"plan": "zzz"}, problems={"plan": "unknown"})
    assert plan.options == (("", "(missing)"), ("a", "a"), ("zzz", "zzz"))
    assert (plan.value, plan.problem) == ("zzz", "unknown")
    [required] = build_fields(SPEC, {}, overrides=False)[3:4]
    assert required.options[0] == ("", "(choose)")


def test_range_hints_come_from_the_training_statistics_before_the_spec():
    frame = pd.DataFrame(
        {
            "age": [41.0, 50.5, 88.0],
            "visits": [1.0, 2.0, np.nan],
            "smoker": [0.0, 1.0, 1.0],
            "plan": ["basic", "gold", "gold"],
        }
    )
    spec = FeatureSpec(columns=[c for c in SPEC.columns if c.name != "note"])
    stats = build_reference_stats(frame, spec)
    assert range_hints(spec, stats) == {"age": f"seen 41 {DASH} 88", "visits": f"seen 1 {DASH} 2"}
    assert range_hints(spec, None) == {"age": f"seen 40 {DASH} 95", "visits": f"seen 0 {DASH} 12"}


def test_problems_are_placed_by_feature_with_override_paths_unwrapped():
    problems = [
        Problem("age", "is empty"),
        Problem("overrides.visits", "2.5 is not a whole number"),
        Problem("age", "too many"),
        Problem("body", "broken"),
    ]
    by_field, rest = problems_by_field(problems, ["age", "visits"])
    assert by_field == {"age": "is empty; too many", "visits": "2.5 is not a whole number"}
    assert rest == ["body: broken"]
