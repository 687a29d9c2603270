"""The model card renders one self-contained, escaped HTML page from a synthetic training run."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest

from tabops.training.card import DataProfile, ModelCard, render_model_card
from tabops.training.threshold import evaluate_operating_points, operating_points

SECTIONS = (
    "summary",
    "data",
    "guards",
    "leaderboard",
    "chosen",
    "split",
    "calibration",
    "threshold",
    "metrics",
    "curves",
    "importance",
    "gates",
    "metadata",
)
HOSTILE = "<script>alert(1)</script>"
DASH = "\N{EN DASH}"
IMAGE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def make_card(**changes) -> ModelCard:
    """A card as the trainer would build it, from 200 seeded synthetic rows (60 held out)."""
    rng = np.random.default_rng(7)
    y = (rng.random(200) < 0.3).astype(int)
    p = np.clip(0.3 * y + rng.beta(2, 4, 200), 0, 1)
    y_test, p_test = y[140:], p[140:]
    predicted = p_test >= 0.5
    confusion = {
        "tn": int(np.sum(~predicted & (y_test == 0))),
        "fp": int(np.sum(predicted & (y_test == 0))),
        "fn": int(np.sum(~predicted & (y_test == 1))),
        "tp": int(np.sum(predicted & (y_test == 1))),
    }
    card = ModelCard(
        name="heart-failure",
        created="2025-07-01T12:30:00+00:00",
        target="DEATH_EVENT",
        negative_class="survived",
        positive_class="dead",
        profile=DataProfile(
            rows=200,
            rows_by_split={"train": 110, "validation": 30, "test": 60},
            positives_by_split={"train": 33, "validation": 9, "test": int(y_test.sum())},
            columns=[
                {
                    "name": "age",
                    "role": "feature",
                    "kind": "numeric",
                    "missing_share": 0.0,
                    "summary": "40 to 95, median 60",
                },
                {
                    "name": "smoking",
                    "role": "feature",
                    "kind": "boolean",
                    "missing_share": 0.05,
                    "summary": "32.1% true",
                },
                {
                    "name": "DEATH_EVENT",
                    "role": "target",
                    "kind": "boolean",
                    "missing_share": 0.0,
                    "summary": "2 values: 0, 1",
                },
            ],
        ),
        guards=[
            {
                "guard": "leakage",
                "severity": "error",
                "column": "time",
                "message": "time predicts the target alone",
            },
            {
                "guard": "missing",
                "severity": "warning",
                "column": "smoking",
                "message": "5% missing",
            },
            {"guard": "size", "severity": "info", "column": None, "message": "small dataset"},
        ],
        leaderboard=[
            {
                "name": "hist_gradient_boosting",
                "params": {"learning_rate": 0.1, "max_depth": 3},
                "pr_auc_mean": 0.71,
                "pr_auc_std": 0.05,
                "roc_auc_mean": 0.85,
                "roc_auc_std": 0.03,
                "fit_seconds": 0.41,
            },
            {
                "name": "logistic_regression",
                "params": {},
                "pr_auc_mean": 0.66,
                "pr_auc_std": 0.06,
                "roc_auc_mean": 0.82,
                "roc_auc_std": 0.04,
                "fit_seconds": 0.02,
            },
        ],
        chosen="hist_gradient_boosting",
        chosen_reason="highest mean cross-validated PR AUC (0.710 ± 0.050) of 2 candidates",
        split="stratified random split: 55% train, 15% validation, 30% test",
        imbalance="class_weight",
        calibration={"method": "isotonic", "kept": True, "brier_before": 0.16, "brier_after": 0.14},
        threshold=0.5,
        threshold_policy="max_f1",
        threshold_reason="the threshold with the highest F1 on the validation rows",
        metrics={
            "roc_auc": 0.84,
            "pr_auc": 0.7,
            "f1": 0.61,
            "precision": 0.58,
            "recall": 0.65,
            "mcc": 0.45,
            "brier": 0.15,
            "log_loss": 0.47,
            "accuracy": 0.78,
        },
        intervals={"roc_auc": (0.75, 0.92), "pr_auc": (0.55, 0.83)},
        confusion=confusion,
        y_test=y_test,
        p_test=p_test,
        importance=[(f"feature_{i}", float(rng.normal(0.02, 0.02)), 0.01) for i in range(25)],
        gates=[
            {"gate": "roc_auc >= 0.75", "metric": "roc_auc", "observed": 0.84, "passed": True},
            {"gate": "pr_auc >= 0.8", "metric": "pr_auc", "observed": 0.7, "passed": False},
        ],
        metadata={
            "data": "heart.csv",
            "data sha256": "ab" * 32,
            "rows": 200,
            "training seconds": 3.2,
            "git commit": None,
            "library_versions": {"scikit-learn": "1.6.1", "numpy": "2.1.0"},
        },
    )
    return replace(card, **changes)


class _Tags(HTMLParser):
    """Start tags and their ids, to check the page is one well-formed document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.update(value for key, value in attrs if key == "id" and value)


def parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def visible(page: str) -> str:
    """The page without its images, so base64 never matches a text check."""
    return IMAGE.sub("data:image/png;base64,", page)


@pytest.fixture(scope="module")
def page() -> str:
    return render_model_card(make_card())


def test_render_model_card_is_one_document_with_every_section(page: str):
    tags = parse(page)
    assert page.lstrip().startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert tags.tags.count("html") == tags.tags.count("body") == 1
    assert set(SECTIONS) <= tags.ids
    for text in ("heart-failure", "DEATH_EVENT", "survived", "dead", "2025-07-01 12:30:00 UTC"):
        assert text in page


def test_render_model_card_embeds_every_plot_as_png(page: str):
    assert len(IMAGE.findall(page)) == 5
    assert page.count("<img ") == 5


def test_render_model_card_needs_nothing_from_outside(page: str):
    tags = parse(page)
    assert "http://" not in page
    assert "https://" not in page
    assert not {"script", "link", "iframe", "object"} & set(tags.tags)
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources
    assert all(source.startswith("data:image/png;base64,") for source in sources)


def test_render_model_card_shows_profile_leaderboard_and_decisions(page: str):
    assert 'class="chosen"' in page
    assert "0.710 ± 0.050" in page
    assert "learning_rate=0.1, max_depth=3" in page
    assert "30.0%" in page  # train positive share, 33 of 110
    assert "0.160 → 0.140" in page
    assert "max_f1" in page
    assert f"0.750 {DASH} 0.920" in page
    assert "Permutation importance (top 20)" in page
    assert "ab" * 32 in page
    assert "scikit-learn 1.6.1, numpy 2.1.0" in page


def test_render_model_card_highlights_warnings_errors_and_failed_gates(page: str):
    assert '<tr class="error">' in page
    assert '<tr class="warning">' in page
    assert '<span class="badge pass">pass</span>' in page
    assert '<span class="badge fail">fail</span>' in page


def test_render_model_card_escapes_hostile_text():
    card = make_card(name=HOSTILE, positive_class=HOSTILE, chosen_reason='"><img src=x>')
    card.profile.columns.append(
        {
            "name": HOSTILE,
            "role": "feature",
            "kind": "category",
            "missing_share": 0.5,
            "summary": "&",
        }
    )
    card.guards.append({"guard": HOSTILE, "severity": HOSTILE, "column": "x", "message": HOSTILE})
    # A "$" would otherwise start matplotlib mathtext and fail on an unbalanced formula.
    card.importance.append(("price_$_{usd", 0.5, 0.1))
    page = render_model_card(card)
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x>" not in page
    assert "script" not in parse(page).tags


def test_render_model_card_without_importance_or_intervals_notes_them():
    page = render_model_card(make_card(importance=[], intervals={}))
    assert "No importance was recorded." in page
    assert "Permutation importance (top 0)" in page
    assert len(IMAGE.findall(page)) == 4
    assert f"0.750 {DASH} 0.920" not in page


def test_render_model_card_skips_roc_and_pr_when_the_test_set_has_one_class():
    y_test = np.zeros(60, dtype=int)
    confusion = {"tn": 50, "fp": 10, "fn": 0, "tp": 0}
    page = render_model_card(make_card(y_test=y_test, confusion=confusion))
    assert page.count("one class only") == 2
    assert len(IMAGE.findall(page)) == 3  # calibration, confusion matrix, importance


def test_render_model_card_renders_nan_metrics_as_a_dash():
    nan = float("nan")
    card = make_card(
        metrics=dict.fromkeys(make_card().metrics, nan),
        intervals={"roc_auc": (nan, nan)},
        calibration={"method": "none", "kept": False, "brier_before": nan, "brier_after": None},
        leaderboard=[{**make_card().leaderboard[0], "pr_auc_std": nan}],
        importance=[("a", nan, nan), ("b", 0.1, nan)],
        gates=[{"gate": "f1 >= 0.5", "metric": "f1", "observed": None, "passed": False}],
    )
    page = visible(render_model_card(card))
    assert re.search(r"\bnan\b", page, re.IGNORECASE) is None
    assert f'<td class="num">{DASH}</td>' in page
    assert "Not calibrated" in page


def test_render_model_card_copes_with_no_test_rows_and_an_empty_run():
    card = make_card(
        created="last Tuesday",
        y_test=np.array([]),
        p_test=np.array([]),
        confusion={},
        guards=[],
        leaderboard=[],
        gates=[],
        metadata={},
        profile=DataProfile(rows=0, rows_by_split={}, positives_by_split={}, columns=[]),
    )
    page = render_model_card(card)
    assert "created last Tuesday" in page
    assert page.count("No usable held-out probabilities were recorded.") == 3
    for note in ("No guard fired.", "No candidates were recorded.", "No gates were configured."):
        assert note in page


def operating_point_documents() -> dict[str, list[dict]]:
    """Operating points as the manifest stores them: chosen on 100 rows, measured on 60."""
    rng = np.random.default_rng(11)
    y = (rng.random(160) < 0.2).astype(int)
    p = np.round(np.clip(0.3 * y + rng.beta(2, 4, 160), 0, 1), 4)
    points = operating_points(y[:100], p[:100])
    tested = evaluate_operating_points(points, y[100:], p[100:])
    return {
        "validation": [point.model_dump() for point in points],
        "test": [point.model_dump() for point in tested],
    }


def test_render_model_card_shows_operating_points_on_validation_and_test_rows():
    documents = operating_point_documents()
    page = render_model_card(make_card(operating_points=documents))

    [table] = re.findall(r'<table id="operating-points">.*?</table>', page, re.DOTALL)
    rows = re.findall(r"<tr><td>(.*?)</tr>", table, re.DOTALL)
    assert [row.split("</td>")[0] for row in rows] == [
        "top 0.1%",
        "top 1%",
        "top 5%",
        "recall 0.5",
        "recall 0.8",
        "recall 0.9",
    ]
    assert "validation rows" in table
    assert "test rows" in table
    for row, validation, test in zip(rows, documents["validation"], documents["test"], strict=True):
        cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
        assert cells[0] == f"{validation['threshold']:.4f}"
        assert cells[1:5] == [
            str(validation["flagged"]),
            str(validation["true_positives"]),
            f"{validation['precision']:.1%}",
            f"{validation['recall']:.1%}",
        ]
        assert cells[5:] == [
            str(test["flagged"]),
            str(test["true_positives"]),
            f"{test['precision']:.1%}",
            f"{test['recall']:.1%}",
        ]


def test_render_model_card_without_operating_points_says_so(page: str):
    assert "No operating points were recorded." in page
    assert 'id="operating-points"' not in page
    assert 'id="threshold-warning"' not in page


def test_render_model_card_warns_beside_the_threshold_when_it_catches_nothing():
    warning = "the threshold 0.41 catches none of the 23 positives of the test rows <b>"
    page = render_model_card(make_card(notes=[warning], threshold_warnings=[warning]))

    threshold = page[page.index('<section id="threshold">') :]
    threshold = threshold[: threshold.index("</section>")]
    assert 'class="alert" id="threshold-warning"' in threshold
    assert "catches none of the 23 positives of the test rows &lt;b&gt;" in threshold
    assert threshold.index("threshold-warning") < threshold.index("Confusion matrix")
    assert page.count("catches none of the 23 positives") == 2  # also under notes on this run
