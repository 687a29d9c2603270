"""Model card benchmark: how long ``render_model_card`` takes, in this process.

Usage (from the repository root):
    .venv/bin/python bench/card.py [--repeats 7]

The card is the one tests/unit/test_card.py renders: its ``make_card()`` (200 seeded synthetic
rows, 60 held out, 25 importances, five plots) is loaded from that file, so the two stay the
same card. The first render also parses the template and loads matplotlib's fonts, once per
process, so it is printed apart; then ``--repeats`` renders are timed one by one and their
median, fastest and slowest are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

from tabops.training.card import ModelCard, render_model_card

TEST_CARD = Path(__file__).resolve().parent.parent / "tests" / "unit" / "test_card.py"


def load_card() -> ModelCard:
    """The card ``make_card()`` in tests/unit/test_card.py builds."""
    spec = importlib.util.spec_from_file_location("test_card", TEST_CARD)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {TEST_CARD}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    card: ModelCard = module.make_card()
    return card


def time_render(card: ModelCard) -> tuple[float, int]:
    """Seconds one render took, and the page's size in bytes."""
    started = time.perf_counter()
    page = render_model_card(card)
    return time.perf_counter() - started, len(page.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    if options.repeats < 1:
        parser.error("--repeats must be 1 or more")
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("matplotlib", "jinja2"))
    print(f"Python {platform.python_version()}, {versions}; {os.cpu_count()} CPUs")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    card = load_card()
    first, size = time_render(card)
    seconds = [time_render(card)[0] for _ in range(options.repeats)]
    print(f"page: {size:,} bytes")
    print(f"first render (template parsing and font loading included): {first:.3f} s")
    print(
        f"render, median of {options.repeats}: {statistics.median(seconds):.3f} s"
        f" (fastest {min(seconds):.3f} s, slowest {max(seconds):.3f} s)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
