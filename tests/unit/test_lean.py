"""LeanDecoder: never more permissive than full validation, and encodes rows exactly as it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabops.errors import TabopsError
from tabops.model.decoder import LeanDecoder
from tabops.model.encoder import FeatureEncoder
from tabops.schema import FeatureSpec, Kind, infer_schema
from tabops.server.codecs.v1 import parse_json_object
from tabops.validation import FeatureValidator

ROWS = 120
COLOURS = ["blue", "green", "red"]
# A valid record: a number, an integer, a flag, a nullable category, a nullable number.
RECORD: dict[str, Any] = {"amount": 12.5, "count": 3, "flag": 1, "colour": "red", "gap": -0.25}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    gap = rng.normal(size=ROWS)
    gap[rng.random(ROWS) < 0.15] = np.nan
    colour = rng.choice(COLOURS, size=ROWS).astype(object)
    colour[rng.random(ROWS) < 0.1] = None
    return pd.DataFrame(
        {
            "amount": rng.normal(50.0, 20.0, size=ROWS),
            "count": rng.integers(0, 40, size=ROWS),
            "flag": rng.integers(0, 2, size=ROWS),
            "colour": colour,
            "gap": gap,
            "y": rng.integers(0, 2, size=ROWS),
        }
    )


@pytest.fixture(scope="module")
def spec(frame: pd.DataFrame) -> FeatureSpec:
    return infer_schema(frame, "y").spec


@pytest.fixture(scope="module")
def encoder(frame: pd.DataFrame, spec: FeatureSpec) -> FeatureEncoder:
    return FeatureEncoder.from_spec(spec).fit(frame.drop(columns="y"))


@pytest.fixture(scope="module")
def lean(spec: FeatureSpec, encoder: FeatureEncoder) -> LeanDecoder:
    return LeanDecoder(spec, encoder)


@pytest.fixture(scope="module")
def record_model(spec: FeatureSpec) -> FeatureValidator:
    """The full path: the one validator, which the typed decoder stands in front of."""
    return FeatureValidator(spec)


def validate_fully(record_model: FeatureValidator, body: bytes) -> dict[str, Any] | None:
    """The full path's verdict on a single-record body: the validated record, or None."""
    try:
        document = parse_json_object(body)
    except TabopsError:
        return None
    if set(document) == {"features"} and isinstance(document["features"], dict):
        document = document["features"]  # the API accepts a record under "features"
    record, problems = record_model.check_record(document)
    return None if problems else record


def validate_batch_fully(record_model: FeatureValidator, body: bytes) -> list[dict] | None:
    """The full path's verdict on a ``{"records": [...]}`` body."""
    try:
        document = parse_json_object(body)
    except TabopsError:
        return None
    if set(document) != {"records"} or not isinstance(document["records"], list):
        return None
    records = []
    for item in document["records"]:
        record, problems = record_model.check_record(item)
        if problems:
            return None
        records.append(record)
    return records


def as_frame(spec: FeatureSpec, records: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [{name: record.get(name) for name in spec.feature_names} for record in records],
        columns=spec.feature_names,
    )


def body_of(**changes: Any) -> bytes:
    """RECORD as JSON with some fields changed; a value of ``...`` leaves the field out."""
    record = {k: v for k, v in (RECORD | changes).items() if v is not ...}
    return json.dumps(record).encode()


def raw_body(**tokens: str) -> bytes:
    """RECORD as JSON text with some values replaced by raw tokens (NaN, 1e999, 3.0)."""
    values = {name: json.dumps(value) for name, value in RECORD.items()} | tokens
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}").encode()


# A category written in Latin-1: the UTF-8 bytes of "\u00e9" replaced by the lone byte 0xE9.
NOT_UTF8_CATEGORY = (
    json.dumps(RECORD | {"colour": "r\u00e9d"}, ensure_ascii=False)
    .encode()
    .replace(b"\xc3\xa9", b"\xe9")
)


def test_the_fixture_spec_has_every_kind_and_nullable_features(spec):
    kinds = {column.name: (column.kind, column.nullable) for column in spec.features}

    assert kinds == {
        "amount": (Kind.NUMERIC, False),
        "count": (Kind.INTEGER, False),
        "flag": (Kind.BOOLEAN, False),
        "colour": (Kind.CATEGORICAL, True),
        "gap": (Kind.NUMERIC, True),
    }


GOOD_BODIES = [
    pytest.param(body_of(), id="plain"),
    pytest.param(body_of(amount=12), id="integer-for-number"),
    pytest.param(body_of(amount=-3, gap=0), id="integers-for-numbers"),
    pytest.param(raw_body(amount="1E2"), id="exponent"),
    pytest.param(raw_body(amount="-0"), id="minus-zero"),
    pytest.param(raw_body(amount="1e-400"), id="underflow-to-zero"),
    pytest.param(body_of(amount=1.7976931348623157e308), id="largest-float"),
    pytest.param(body_of(count=-7), id="negative-integer"),
    pytest.param(body_of(count=2**53 + 1), id="integer-beyond-float-precision"),
    pytest.param(body_of(flag=True), id="true-for-flag"),
    pytest.param(body_of(flag=False), id="false-for-flag"),
    pytest.param(body_of(flag=0), id="zero-for-flag"),
    pytest.param(raw_body(count="3.0"), id="whole-float-for-integer"),
    pytest.param(raw_body(count="1e2"), id="exponent-for-integer"),
    pytest.param(raw_body(flag="1.0"), id="whole-float-for-flag"),
    pytest.param(raw_body(flag="0.0"), id="zero-float-for-flag"),
    pytest.param(body_of(colour=None), id="null-category"),
    pytest.param(body_of(colour=...), id="absent-category"),
    pytest.param(body_of(gap=None), id="null-number"),
    pytest.param(body_of(gap=...), id="absent-number"),
    pytest.param(body_of(colour=..., gap=...), id="every-nullable-absent"),
    pytest.param(body_of(colour="purple"), id="unknown-category"),
    pytest.param(body_of(colour=""), id="empty-category"),
    pytest.param(body_of(colour="Red"), id="category-case-differs"),
    pytest.param(body_of(colour="gr\u00fcn \u2603"), id="non-ascii-category"),
    pytest.param(b'{"colour": "r\\u0065d", "amount": 1, "count": 2, "flag": 0}', id="escapes"),
    pytest.param(b'  {"amount": 1, "count": 2, "flag": 0}\n ', id="surrounding-whitespace"),
    pytest.param(
        b'{"amount": 1, "amount": 2.5, "count": 2, "flag": 0}', id="duplicate-key-last-wins"
    ),
]


@pytest.mark.parametrize("body", GOOD_BODIES)
def test_lean_decoder_accepts_valid_record_and_encodes_it_as_the_full_path(
    lean, encoder, spec, record_model, body
):
    validated = validate_fully(record_model, body)
    assert validated is not None, "the full path must accept this body too"

    values = lean.decode_one(body)

    assert values is not None
    encoded = lean.encode([values])
    np.testing.assert_array_equal(encoded, encoder.encode_records([validated]))
    np.testing.assert_array_equal(encoded, encoder.transform(as_frame(spec, [validated])))


def test_lean_decoder_gives_values_in_spec_order(lean, spec):
    values = lean.decode_one(json.dumps(dict(reversed(RECORD.items()))).encode())

    assert values == tuple(RECORD[name] for name in spec.feature_names)


def test_lean_decoder_codes_unknown_and_missing_categories_like_the_encoder(lean, encoder):
    position = encoder.features.index("colour")
    indicator = len(encoder.features) + list(encoder.nullable).index("colour")

    unknown = lean.encode([lean.decode_one(body_of(colour="purple"))])[0]
    missing = lean.encode([lean.decode_one(body_of(colour=...))])[0]

    assert unknown[position] == -1.0
    assert unknown[indicator] == 0.0
    assert missing[position] == encoder.fill_[position]
    assert missing[indicator] == 1.0


# (body, whether the full path accepts it): the lean decoder refuses every one of them, and
# the full path decides. It accepts a few bodies the lean decoder leaves to it.
REFUSED_BODIES = [
    pytest.param(body_of(amount="12.5"), False, id="text-for-number"),
    pytest.param(body_of(amount=True), False, id="true-for-number"),
    pytest.param(body_of(count=False), False, id="false-for-integer"),
    pytest.param(body_of(amount={"value": 1}), False, id="object-for-number"),
    pytest.param(body_of(amount=[1]), False, id="list-for-number"),
    pytest.param(raw_body(amount="NaN"), False, id="nan"),
    pytest.param(raw_body(gap="NaN"), False, id="nan-in-nullable"),
    pytest.param(raw_body(amount="Infinity"), False, id="infinity"),
    pytest.param(raw_body(amount="-Infinity"), False, id="minus-infinity"),
    pytest.param(raw_body(amount="1e999"), False, id="overflowing-float"),
    pytest.param(raw_body(gap="-1e999"), False, id="overflowing-float-in-nullable"),
    pytest.param(raw_body(amount="1" + "0" * 400), False, id="overflowing-integer-for-number"),
    pytest.param(body_of(extra=1), False, id="unknown-field"),
    pytest.param(body_of(amount=...), False, id="missing-number"),
    pytest.param(body_of(flag=...), False, id="missing-flag"),
    pytest.param(body_of(amount=None), False, id="null-for-number"),
    pytest.param(body_of(count=None), False, id="null-for-integer"),
    pytest.param(body_of(flag=None), False, id="null-for-flag"),
    pytest.param(body_of(flag=2), False, id="two-for-flag"),
    pytest.param(body_of(flag=-1), False, id="minus-one-for-flag"),
    pytest.param(body_of(flag="true"), False, id="text-for-flag"),
    pytest.param(body_of(flag=0.5), False, id="fraction-for-flag"),
    pytest.param(body_of(count=3.5), False, id="fraction-for-integer"),
    pytest.param(body_of(count="3"), False, id="text-for-integer"),
    pytest.param(body_of(colour=1), False, id="number-for-category"),
    pytest.param(body_of(colour=True), False, id="true-for-category"),
    pytest.param(json.dumps([RECORD]).encode(), False, id="list-instead-of-object"),
    pytest.param(b"null", False, id="json-null"),
    pytest.param(b'"text"', False, id="json-string"),
    pytest.param(b'{"amount": 12.5,', False, id="malformed-json"),
    pytest.param(body_of() + b" x", False, id="trailing-garbage"),
    pytest.param(b"", False, id="empty-body"),
    pytest.param(b"  \n", False, id="blank-body"),
    pytest.param(b"\xff", False, id="not-utf8"),
    pytest.param(b"{}", False, id="empty-object"),
    pytest.param(json.dumps({"features": RECORD}).encode(), True, id="features-wrapper"),
    pytest.param(b"\xef\xbb\xbf" + body_of(), True, id="utf8-byte-order-mark"),
    pytest.param(body_of(colour="\ud800"), True, id="lone-surrogate-escape"),
]


@pytest.mark.parametrize(("body", "full_accepts"), REFUSED_BODIES)
def test_lean_decoder_refuses_and_leaves_the_verdict_to_full_validation(
    lean, record_model, body, full_accepts
):
    assert lean.decode_one(body) is None
    assert (validate_fully(record_model, body) is not None) is full_accepts


def test_lean_decoder_refuses_invalid_utf8_inside_a_string(lean, record_model):
    body = NOT_UTF8_CATEGORY
    assert validate_fully(record_model, body) is None  # the full path answers 400

    assert lean.decode_one(body) is None


# --- batches ----------------------------------------------------------------------------


def batch(*bodies: bytes) -> bytes:
    return b'{"records": [' + b", ".join(bodies) + b"]}"


GOOD_BATCHES = [
    pytest.param(batch(body_of()), id="one-record"),
    pytest.param(
        batch(
            body_of(),
            body_of(colour=..., gap=None),
            body_of(flag=True, amount=4),
            body_of(colour="purple", count=-1),
        ),
        id="mixed-records",
    ),
    pytest.param(batch(*(body_of(count=i, amount=i / 7) for i in range(50))), id="fifty-records"),
    pytest.param(batch(body_of(), raw_body(count="3.0", flag="1.0")), id="whole-floats"),
]


@pytest.mark.parametrize("body", GOOD_BATCHES)
def test_lean_batch_decoding_accepts_valid_batch_and_encodes_it_as_the_full_path(
    lean, encoder, spec, record_model, body
):
    validated = validate_batch_fully(record_model, body)
    assert validated is not None

    rows = lean.decode_batch(body)

    assert rows is not None
    assert len(rows) == len(validated)
    encoded = lean.encode(rows)
    assert encoded is not None
    np.testing.assert_array_equal(encoded, encoder.encode_records(validated))
    np.testing.assert_array_equal(encoded, encoder.transform(as_frame(spec, validated)))


REFUSED_BATCHES = [
    pytest.param(batch(body_of(), body_of(amount="x")), False, id="text-for-number"),
    pytest.param(batch(body_of(), raw_body(gap="NaN")), False, id="nan"),
    pytest.param(batch(body_of(), body_of(flag=2)), False, id="two-for-flag"),
    pytest.param(batch(body_of(), body_of(extra=1)), False, id="unknown-field-in-record"),
    pytest.param(batch(body_of(count=...)), False, id="missing-field"),
    pytest.param(batch(body_of(), b"5"), False, id="record-not-an-object"),
    pytest.param(b'{"records": ' + body_of() + b"}", False, id="records-not-a-list"),
    pytest.param(b'{"rows": [' + body_of() + b"]}", False, id="records-missing"),
    pytest.param(b'{"records": [], "limit": 3}', False, id="unknown-top-level-field"),
    pytest.param(b"[" + body_of() + b"]", False, id="list-instead-of-object"),
    pytest.param(b'{"records": [', False, id="malformed-json"),
    pytest.param(b"", False, id="empty-body"),
    pytest.param(batch(body_of(), raw_body(count="3.5")), False, id="fraction-for-integer"),
    pytest.param(batch(json.dumps({"features": RECORD}).encode()), False, id="wrapped-record"),
]


@pytest.mark.parametrize(("body", "full_accepts"), REFUSED_BATCHES)
def test_lean_batch_decoding_refuses_and_leaves_the_verdict_to_full_validation(
    lean, record_model, body, full_accepts
):
    rows = lean.decode_batch(body)
    assert rows is None or lean.encode(rows) is None
    assert (validate_batch_fully(record_model, body) is not None) is full_accepts


def test_lean_batch_decoding_refuses_invalid_utf8_inside_a_string(lean):
    assert lean.decode_batch(batch(body_of(), NOT_UTF8_CATEGORY)) is None


def test_lean_batch_decoding_of_an_empty_list_gives_no_rows(lean):
    # The size check (422 for an empty batch) is the caller's, as for the full path.
    assert lean.decode_batch(b'{"records": []}') == []


# --- random records ----------------------------------------------------------------------


def random_value(rng: np.random.Generator, name: str) -> Any:
    """A valid JSON value for a feature, sometimes left out (``...``) where that is allowed."""
    choice = rng.random()
    if name == "amount":
        scale = 10.0 ** rng.integers(-3, 9)
        return float(rng.normal(0, scale)) if choice < 0.8 else int(rng.integers(-1000, 1000))
    if name == "count":
        return int(rng.integers(-(10**12), 10**12))
    if name == "flag":
        return [0, 1, True, False][int(rng.integers(4))]
    if name == "colour":
        return [*COLOURS, "purple", "", None, ...][int(rng.integers(7))]
    return [float(rng.normal()), int(rng.integers(-5, 5)), None, ...][int(rng.integers(4))]


def test_random_valid_records_decode_and_encode_identically_on_both_paths(
    lean, encoder, spec, record_model
):
    rng = np.random.default_rng(2024)
    bodies = []
    for _ in range(300):
        record = {name: random_value(rng, name) for name in spec.feature_names}
        bodies.append(json.dumps({k: v for k, v in record.items() if v is not ...}).encode())
    validated = [validate_fully(record_model, body) for body in bodies]
    assert all(record is not None for record in validated)

    rows = [lean.decode_one(body) for body in bodies]

    assert all(row is not None for row in rows)
    encoded = lean.encode(rows)
    np.testing.assert_array_equal(encoded, encoder.encode_records(validated))
    np.testing.assert_array_equal(encoded, encoder.transform(as_frame(spec, validated)))
    whole = lean.decode_batch(batch(*bodies))
    assert whole is not None
    np.testing.assert_array_equal(lean.encode(whole), encoded)


# --- other feature orders ----------------------------------------------------------------


def test_lean_decoder_builds_when_a_nullable_feature_comes_before_a_required_one(frame):
    # The credit-risk example has this order: a nullable number between required ones.
    reordered = frame[["gap", "amount", "colour", "count", "y"]]
    spec = infer_schema(reordered, "y").spec
    encoder = FeatureEncoder.from_spec(spec).fit(reordered.drop(columns="y"))
    record_model = FeatureValidator(spec)
    body = b'{"amount": 12.5, "colour": "red", "count": 3}'
    validated = validate_fully(record_model, body)
    assert validated is not None

    lean = LeanDecoder(spec, encoder)

    values = lean.decode_one(body)
    assert values is not None
    np.testing.assert_array_equal(lean.encode([values]), encoder.encode_records([validated]))


def test_lean_decoder_refuses_an_encoder_of_other_features(spec, frame):
    other = FeatureEncoder.from_spec(infer_schema(frame.drop(columns="gap"), "y").spec).fit(
        frame.drop(columns=["gap", "y"])
    )

    with pytest.raises(ValueError, match="do not match the spec"):
        LeanDecoder(spec, other)


def listed(key: str, *records: bytes, params: bytes | None = None) -> bytes:
    """A body listing ``records`` under ``key``, with ``params`` beside them if given."""
    body = f'{{"{key}": ['.encode() + b", ".join(records) + b"]"
    return body + (b', "params": ' + params if params is not None else b"") + b"}"


@pytest.mark.parametrize("key", ["dataframe_records", "instances"])
def test_records_listed_under_another_key_decode_as_a_batch_does(lean, key):
    records = (body_of(), body_of(amount=2.5))
    found = lean.decode_listed(listed(key, *records, params=b'{"predict_method": "x"}'), key)
    assert found is not None
    rows, params = found
    assert rows == lean.decode_batch(batch(*records))
    assert params == {"predict_method": "x"}
    assert lean.decode_listed(listed(key, *records), key) == (rows, None)


@pytest.mark.parametrize(
    "body",
    [
        listed("dataframe_records", body_of(), body_of(amount="x")),
        listed("dataframe_records", body_of(extra=1)),
        listed("instances", body_of()),
        b'{"dataframe_records": [], "limit": 3}',
        b"[]",
    ],
    ids=["text-for-number", "unknown-field", "other-key", "unknown-top-level-field", "a-list"],
)
def test_records_listed_under_another_key_refuse_what_full_validation_must_judge(lean, body):
    assert lean.decode_listed(body, "dataframe_records") is None


def split_body(columns: list[str], rows: list[list[Any]], **extra: Any) -> bytes:
    """MLflow's ``dataframe_split`` body."""
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows, **extra}}).encode()


def test_a_split_body_in_spec_order_decodes_as_its_records_do(lean, spec):
    names = [column.name for column in spec.features]
    second = json.loads(body_of(amount=2.5))
    rows = [[RECORD.get(name) for name in names], [second.get(name) for name in names]]
    found = lean.decode_split(split_body(names, rows, index=[7, 8]))
    assert found is not None
    assert found[0] == lean.decode_batch(batch(body_of(), body_of(amount=2.5)))
    assert found[1] is None


def test_a_split_body_in_any_column_order_decodes_as_in_spec_order(lean, spec):
    names = [column.name for column in spec.features]
    second = json.loads(body_of(amount=2.5))
    rows = [[RECORD.get(name) for name in names], [second.get(name) for name in names]]
    expected = lean.decode_split(split_body(names, rows))
    assert expected is not None
    for order in (names[::-1], names[1:] + names[:1], names[::-1]):  # a known order again too
        moved = [[row[names.index(name)] for name in order] for row in rows]
        assert lean.decode_split(split_body(order, moved)) == expected


@pytest.mark.parametrize(
    "change",
    [
        "reordered-values-only",
        "text-for-number",
        "short-row",
        "index-too-short",
        "unknown-field",
        "column-missing",
        "column-twice",
        "unknown-column",
    ],
)
def test_a_split_body_leaves_anything_else_to_full_validation(lean, spec, change):
    names = [column.name for column in spec.features]
    row = [RECORD.get(name) for name in names]
    extra: dict[str, Any] = {}
    if change == "reordered-values-only":  # the columns in spec order, the values not
        row = row[::-1]
    elif change == "column-missing":
        names, row = names[1:], row[1:]
    elif change == "column-twice":
        names = [names[1], *names[1:]]
    elif change == "unknown-column":
        names = ["height", *names[1:]]
    elif change == "text-for-number":
        row[names.index("amount")] = "x"
    elif change == "short-row":
        row = row[:-1]
    elif change == "index-too-short":
        extra["index"] = []
    else:
        extra["orient"] = "split"
    assert lean.decode_split(split_body(names, [row], **extra)) is None
