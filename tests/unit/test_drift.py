"""Reference statistics and streaming drift on seeded synthetic data (no I/O)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats

from tabops.errors import ArtifactIntegrityError, InvalidInputError
from tabops.model.reference_stats import (
    MAX_CATEGORIES,
    ReferenceStats,
    build_reference_stats,
    describe_numbers,
)
from tabops.monitoring.counts import MAX_UNSEEN_NAMES
from tabops.monitoring.drift import DriftAccumulator, drift_status
from tabops.monitoring.statistics import (
    chi2_survival,
    compute_chi2_pvalue,
    compute_jensen_shannon,
    compute_ks,
    compute_psi,
    compute_wasserstein,
)
from tabops.schema import FeatureSpec

ROWS = 20_000
SPEC = FeatureSpec.model_validate(
    {
        "columns": [
            {"name": "amount", "kind": "numeric", "nullable": True},
            {"name": "visits", "kind": "integer"},
            {"name": "region", "kind": "categorical", "nullable": True},
            {"name": "member", "kind": "boolean"},
            {"name": "churned", "kind": "boolean", "role": "target"},
        ]
    }
)
REGIONS = ["north", "south", "east", "west"]


def training_frame(rng: np.random.Generator, rows: int = ROWS) -> pd.DataFrame:
    """Feature columns as coerce_frame gives them: floats, strings or None, 0/1 floats."""
    amount = rng.lognormal(3.0, 0.5, rows)
    amount[rng.random(rows) < 0.05] = np.nan
    region = rng.choice(REGIONS, rows, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    region[rng.random(rows) < 0.02] = None
    return pd.DataFrame(
        {
            "amount": amount,
            "visits": rng.poisson(4, rows).astype(float),
            "region": region,
            "member": (rng.random(rows) < 0.3).astype(float),
        }
    )


def log_batch(
    rng: np.random.Generator,
    rows: int,
    *,
    amount_shift: float = 0.0,
    regions: list[str] = REGIONS,
    weights: list[float] | None = None,
    struct: bool = False,
) -> pa.RecordBatch:
    """A batch as the prediction log stores it: features typed per kind, and a probability."""
    frame = training_frame(rng, rows)
    amount = frame["amount"].to_numpy() + amount_shift
    region = rng.choice(regions, rows, p=weights or [0.4, 0.3, 0.2, 0.1])
    features = {
        "amount": pa.array(amount, from_pandas=True),
        "visits": pa.array(frame["visits"].to_numpy()),
        "region": pa.array(region),
        "member": pa.array(frame["member"].to_numpy() > 0),
    }
    probability = pa.array(rng.beta(2, 5, rows))
    if struct:
        return pa.record_batch(
            {
                "features": pa.StructArray.from_arrays(list(features.values()), list(features)),
                "probability": probability,
            }
        )
    return pa.record_batch(
        {
            **{f"features.{name}": column for name, column in features.items()},
            "probability": probability,
        }
    )


@pytest.fixture
def reference() -> ReferenceStats:
    rng = np.random.default_rng(1)
    return build_reference_stats(
        training_frame(rng), SPEC, rng.beta(2, 5, 5_000), threshold=0.4, metrics={"roc_auc": 0.8}
    )


def test_reference_numeric_bins_cover_every_value_in_ten_quantile_bins(reference):
    amount = reference.features["amount"]
    assert amount.kind == "numeric"
    assert len(amount.cuts) == 9
    assert len(amount.counts) == 10
    assert sum(amount.counts) == amount.rows - amount.nulls
    assert max(amount.counts) - min(amount.counts) <= 2
    assert amount.null_rate == pytest.approx(0.05, abs=0.01)
    assert amount.minimum < amount.cuts[0]
    assert amount.maximum >= amount.cuts[-1]


def test_reference_deduplicates_cuts_of_a_discrete_number(reference):
    visits = reference.features["visits"]
    assert visits.cuts == sorted(set(visits.cuts))
    assert len(visits.cuts) < 9
    assert sum(visits.counts) == ROWS


def test_reference_categories_booleans_and_score(reference):
    region = reference.features["region"]
    assert region.kind == "categorical"
    assert region.categories == ["north", "south", "east", "west"]
    assert region.null_rate == pytest.approx(0.02, abs=0.005)
    member = reference.features["member"]
    assert member.kind == "boolean"
    assert member.categories == ["false", "true"]
    assert member.counts[1] / ROWS == pytest.approx(0.3, abs=0.02)
    assert reference.score is not None
    assert reference.score.source == "test"
    assert len(reference.score.counts) == 20
    assert sum(reference.score.counts) == 5_000


def test_reference_caps_categories_and_keeps_names_of_the_rest():
    names = [f"c{i:03d}" for i in range(80)]
    frame = pd.DataFrame({"city": np.repeat(names, np.arange(80, 0, -1)).astype(object)})
    spec = FeatureSpec.model_validate({"columns": [{"name": "city", "kind": "categorical"}]})
    city = build_reference_stats(frame, spec).features["city"]
    assert len(city.categories) == MAX_CATEGORIES
    assert city.categories[0] == "c000"
    assert city.other == sum(range(1, 31))
    assert sorted(city.other_values) == names[MAX_CATEGORIES:]


def test_reference_round_trips_through_json_and_refuses_newer_formats(reference):
    raw = reference.to_json()
    assert ReferenceStats.from_json(raw) == reference
    newer = json.loads(raw) | {"format": 2}
    with pytest.raises(ArtifactIntegrityError, match="format 2"):
        ReferenceStats.from_json(json.dumps(newer))
    with pytest.raises(ArtifactIntegrityError, match="not valid JSON"):
        ReferenceStats.from_json(b"{")


def test_identical_distribution_has_psi_near_zero(reference):
    rng = np.random.default_rng(2)
    drift = DriftAccumulator(reference).add_all([log_batch(rng, 10_000) for _ in range(3)])
    result = drift.result()
    assert result.rows == 30_000
    for name in ("amount", "visits", "region", "member"):
        feature = result.features[name]
        assert feature.psi is not None, name
        assert feature.psi < 0.01, name
        assert feature.status == "ok"
    assert result.features["amount"].ks < 0.02
    assert result.features["amount"].wasserstein < 0.05
    assert result.features["region"].chi2_pvalue > 0.001
    assert result.score_psi is not None
    assert result.score_psi < 0.01
    assert result.drifted == []


def test_shifted_number_and_reweighted_category_raise_alerts(reference):
    rng = np.random.default_rng(3)
    batch = log_batch(rng, 20_000, amount_shift=15.0, weights=[0.1, 0.2, 0.3, 0.4])
    result = DriftAccumulator(reference).add_all([batch]).result()
    amount, region = result.features["amount"], result.features["region"]
    assert amount.psi > 0.2
    assert amount.status == "alert"
    assert amount.ks > 0.3
    assert amount.wasserstein == pytest.approx(15.0 / reference.features["amount"].std, rel=0.25)
    assert amount.mean == pytest.approx(reference.features["amount"].mean + 15.0, rel=0.05)
    assert region.psi > 0.2
    assert region.status == "alert"
    assert region.chi2_pvalue < 1e-6
    assert result.features["visits"].status == "ok"
    assert result.drifted == ["amount", "region"]


def test_unseen_categories_are_counted_and_named(reference):
    rng = np.random.default_rng(4)
    batch = log_batch(rng, 10_000, regions=[*REGIONS, "mars"], weights=[0.3, 0.3, 0.2, 0.1, 0.1])
    region = DriftAccumulator(reference).add_all([batch]).result().features["region"]
    assert region.unseen_share == pytest.approx(0.1, abs=0.01)
    assert list(region.unseen_values) == ["mars"]
    assert region.categories[-2:] == ("other", "unseen")
    assert region.psi > 0.2


def test_nulls_are_counted_apart_from_the_bins(reference):
    amount = np.full(1_000, np.nan)
    amount[:400] = 20.0
    batch = pa.record_batch(
        {
            "features.amount": pa.array(amount, from_pandas=True),
            "features.region": pa.array(["north"] * 500 + [None] * 500),
        }
    )
    result = DriftAccumulator(reference).add_all([batch]).result()
    assert result.features["amount"].null_rate == pytest.approx(0.6)
    assert result.features["amount"].null_rate_change == pytest.approx(0.55, abs=0.01)
    assert result.features["region"].null_rate == pytest.approx(0.5)
    assert sum(result.features["region"].shares) == pytest.approx(1.0)
    # Columns absent from the batch are not counted: no rows, no verdict.
    assert result.features["visits"].rows == 0
    assert result.features["visits"].status == "no_data"
    assert result.score is not None
    assert result.score.rows == 0


def test_struct_features_count_like_flat_columns(reference):
    flat = DriftAccumulator(reference).add_all([log_batch(np.random.default_rng(5), 3_000)])
    nested = DriftAccumulator(reference).add_all(
        [log_batch(np.random.default_rng(5), 3_000, struct=True)]
    )
    assert flat.result().to_dict() == nested.result().to_dict()


def test_flags_logged_as_numbers_count_as_true_and_false(reference):
    batch = pa.record_batch({"features.member": pa.array([0.0, 1.0, 2.0, None])})
    member = DriftAccumulator(reference).add_all([batch]).result().features["member"]
    assert member.shares == (pytest.approx(1 / 3), pytest.approx(2 / 3), 0.0, 0.0)
    assert member.null_rate == pytest.approx(0.25)


def test_merged_accumulators_equal_one_pass(reference):
    rng = np.random.default_rng(6)
    batches = [log_batch(rng, 4_000, amount_shift=i) for i in range(4)]
    whole = DriftAccumulator(reference).add_all(batches)
    left = DriftAccumulator(reference).add_all(batches[:1])
    right = DriftAccumulator(reference).add_all(batches[1:])
    merged = left.merge(right)
    assert merged.rows == whole.rows
    for name, counts in whole.numbers.items():
        assert merged.numbers[name].counts.tolist() == counts.counts.tolist()
        assert merged.numbers[name].high_sum == pytest.approx(counts.high_sum, rel=1e-12)
    for name, counts in whole.categories.items():
        assert merged.categories[name].counts.tolist() == counts.counts.tolist()
        assert merged.categories[name].unseen_names == counts.unseen_names
    assert merged.score.fixed.tolist() == whole.score.fixed.tolist()
    assert_close(merged.result().to_dict(), whole.result().to_dict())


def assert_close(left, right):
    """Equal JSON documents, floats to 1e-9 (sums added in another order differ slightly)."""
    if isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            assert_close(left[key], right[key])
    elif isinstance(left, list):
        assert len(left) == len(right)
        for one, other in zip(left, right, strict=True):
            assert_close(one, other)
    elif isinstance(left, float):
        assert left == pytest.approx(right, rel=1e-9, abs=1e-12)
    else:
        assert left == right


def test_merge_refuses_another_reference(reference):
    other = build_reference_stats(training_frame(np.random.default_rng(9)), SPEC)
    with pytest.raises(ValueError, match="different references"):
        DriftAccumulator(reference).merge(DriftAccumulator(other))


def test_memory_stays_flat_however_many_batches_pass(reference):
    rng = np.random.default_rng(7)
    drift = DriftAccumulator(reference)
    sizes = None
    for round_ in range(40):
        regions = [f"new{round_}-{i}" for i in range(10)]
        drift.add(log_batch(rng, 500, regions=regions, weights=[0.1] * 10))
        now = (
            {name: counts.at_least.shape for name, counts in drift.numbers.items()},
            {name: counts.counts.shape for name, counts in drift.categories.items()},
        )
        assert sizes is None or now == sizes
        sizes = now
    region = drift.categories["region"]
    assert len(region.unseen_names) == MAX_UNSEEN_NAMES
    assert int(region.counts[-1]) == 40 * 500
    assert drift.result().features["region"].unseen_share == 1.0


def test_empty_window_gives_zero_rows_and_no_verdict(reference):
    result = DriftAccumulator(reference).result()
    assert result.rows == 0
    assert {f.status for f in result.features.values()} == {"no_data"}
    assert result.score_psi is None
    json.dumps(result.to_dict())
    empty = pa.record_batch({"features.amount": pa.array([], pa.float64())})
    assert DriftAccumulator(reference).add_all([empty]).result().features["amount"].rows == 0


def test_all_null_and_constant_reference_features_do_not_crash():
    frame = pd.DataFrame({"gap": [np.nan] * 100, "flat": [3.0] * 100, "tag": [None] * 100})
    spec = FeatureSpec.model_validate(
        {
            "columns": [
                {"name": "gap", "kind": "numeric", "nullable": True},
                {"name": "flat", "kind": "numeric"},
                {"name": "tag", "kind": "categorical", "nullable": True},
            ]
        }
    )
    reference = build_reference_stats(frame, spec)
    assert reference.features["gap"].cuts == []
    assert reference.features["gap"].null_rate == 1.0
    assert reference.features["flat"].cuts == [3.0]
    batch = pa.record_batch(
        {
            "features.gap": pa.array([1.0, 2.0]),
            "features.flat": pa.array([3.0, 5.0]),
            "features.tag": pa.array(["a", None]),
        }
    )
    result = DriftAccumulator(reference).add_all([batch]).result()
    assert result.features["gap"].psi is None
    assert result.features["gap"].status == "no_data"
    flat = result.features["flat"]
    assert flat.psi == pytest.approx(0.0)
    assert flat.wasserstein is None
    assert result.features["tag"].unseen_share == 1.0
    json.dumps(result.to_dict())


def test_a_text_column_for_a_number_is_refused_naming_the_feature(reference):
    batch = pa.record_batch({"features.amount": pa.array(["12.5"])})
    with pytest.raises(InvalidInputError, match="amount") as caught:
        DriftAccumulator(reference).add(batch)
    assert caught.value.problems[0].field == "amount"


def test_describe_numbers_of_a_window_matches_reference_bins():
    values = np.arange(100, dtype=float)
    described = describe_numbers(values)
    assert described.counts == [10] * 10
    assert described.mean == pytest.approx(49.5)


@pytest.mark.parametrize("seed", range(5))
def test_statistics_stay_within_their_bounds(seed):
    rng = np.random.default_rng(seed)
    reference, current = rng.integers(0, 100, 8), rng.integers(0, 100, 8)
    assert 0.0 <= compute_ks(reference, current) <= 1.0
    assert 0.0 <= compute_jensen_shannon(reference, current) <= 1.0
    assert compute_psi(reference, current) >= 0.0
    assert 0.0 <= compute_chi2_pvalue(reference, current) <= 1.0
    assert compute_psi(reference, reference) == pytest.approx(0.0)
    assert compute_jensen_shannon(reference, reference * 3) == pytest.approx(0.0, abs=1e-7)


def test_disjoint_distributions_reach_the_upper_bounds():
    left, right = np.array([10, 0]), np.array([0, 10])
    assert compute_ks(left, right) == 1.0
    assert compute_jensen_shannon(left, right) == pytest.approx(1.0)
    means = np.array([0.5, 1.5])
    assert compute_wasserstein(left, means, right, means) == 1.0


def test_chi2_matches_scipy():
    for statistic, degrees in [(0.5, 1), (3.84, 1), (12.0, 4), (60.0, 49), (400.0, 51)]:
        expected = scipy_stats.chi2.sf(statistic, degrees)
        assert chi2_survival(statistic, degrees) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    table = np.array([[120, 90, 40, 0], [100, 110, 30, 7]])
    expected = scipy_stats.chi2_contingency(table[:, :], correction=False).pvalue
    assert compute_chi2_pvalue(table[0], table[1]) == pytest.approx(expected, rel=1e-9)


def test_drift_status_thresholds():
    assert drift_status(None) == "no_data"
    assert drift_status(0.05) == "ok"
    assert drift_status(0.1) == "warn"
    assert drift_status(0.2) == "alert"
    assert drift_status(0.15, warn=0.2, alert=0.3) == "ok"
