"""Online store benchmark: writes and lookups of SqlFeatureStore on SQLite and PostgreSQL.

Usage (from the repository root):
    .venv/bin/python bench/online_store.py [--entities 100000] [--lookups 20000]
                                           [--postgres-url URL] [--skip-postgres]

For each backend, on a fresh database (a SQLite file in a temporary folder; a throwaway
PostgreSQL database created on the server of ``--postgres-url`` and dropped afterwards,
skipped when the server is unreachable):

1. a full write of a synthetic table: one row per entity, 8 features (5 floats of different
   scales, 2 ints, 1 category) and an event time;
2. the same table again, nothing changed (every digest matches, nothing is written);
3. an incremental write where 1% of the entities have a new value and event time;
4. ``--lookups`` ``get`` calls of random entity ids, one at a time, in this process, timed
   one by one with ``perf_counter_ns`` after 1,000 warm-up calls (GC left on, as in a server).

Served values are checked against the written table for 1,000 random entities. Prints a
markdown table; latencies are in microseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from tabops.database import create_database_engine
from tabops.feature_store import SqlFeatureStore

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
VIEW = "clients"
CHANGED_SHARE = 0.01


@dataclass
class Result:
    backend: str
    full_write_s: float
    unchanged_write_s: float
    incremental_write_s: float
    incremental_counts: str
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float


def synthetic_table(entities: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amounts = rng.lognormal(8, 1, entities)
    amounts[rng.random(entities) < 0.05] = np.nan  # some missing values, as in real tables
    return pd.DataFrame(
        {
            "client_id": np.arange(5_000_000, 5_000_000 + entities),
            "seen": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 86_400 * 300, entities), unit="s"),
            "amount": amounts,
            "ratio": rng.random(entities),
            "score": rng.normal(0, 1, entities),
            "tiny": rng.random(entities) * 1e-9,
            "balance": rng.normal(0, 1e6, entities),
            "loans": rng.integers(0, 60, entities),
            "age": rng.integers(18, 90, entities),
            "segment": rng.choice(["gold", "silver", "bronze", "new"], entities),
        }
    )


def changed_table(table: pd.DataFrame, share: float, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    changed = table.copy()
    rows = rng.choice(len(table), int(len(table) * share), replace=False)
    changed.loc[rows, "score"] = rng.normal(0, 1, len(rows))
    changed.loc[rows, "seen"] = changed.loc[rows, "seen"] + pd.Timedelta(days=1)
    return changed


def check_served(store: SqlFeatureStore, table: pd.DataFrame, count: int = 1_000) -> None:
    rng = np.random.default_rng(2)
    features = [name for name in table.columns if name not in ("client_id", "seen")]
    for position in rng.choice(len(table), count, replace=False):
        offline = table.iloc[position]
        row = store.get(VIEW, str(offline["client_id"]))
        assert row is not None, offline["client_id"]
        for name in features:
            expected = None if pd.isna(offline[name]) else offline[name]
            assert row.values[name] == expected, (name, row.values[name], expected)
        assert row.event_time == offline["seen"].to_pydatetime()


def measure_lookups(store: SqlFeatureStore, entities: int, lookups: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    ids = [str(5_000_000 + number) for number in rng.integers(0, entities, lookups + 1_000)]
    for entity_id in ids[:1_000]:
        store.get(VIEW, entity_id)
    latencies = np.empty(lookups)
    clock = time.perf_counter_ns
    for index, entity_id in enumerate(ids[1_000:]):
        started = clock()
        store.get(VIEW, entity_id)
        latencies[index] = clock() - started
    return latencies / 1_000


def run_backend(backend: str, url: str, entities: int, lookups: int) -> Result:
    table = synthetic_table(entities)
    changed = changed_table(table, CHANGED_SHARE)
    store = SqlFeatureStore(create_database_engine(url))
    try:
        full = store.write(VIEW, table, "client_id", "seen")
        assert full.inserted == entities, full
        same = store.write(VIEW, table, "client_id", "seen")
        assert same.unchanged == entities, same
        incremental = store.write(VIEW, changed, "client_id", "seen")
        assert incremental.updated == int(entities * CHANGED_SHARE), incremental
        check_served(store, changed)
        latencies = measure_lookups(store, entities, lookups)
    finally:
        store.close()
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return Result(
        backend=backend,
        full_write_s=full.seconds,
        unchanged_write_s=same.seconds,
        incremental_write_s=incremental.seconds,
        incremental_counts=(
            f"{incremental.updated:,} updated, {incremental.unchanged:,} unchanged"
        ),
        p50_us=float(p50),
        p90_us=float(p90),
        p99_us=float(p99),
        max_us=float(latencies.max()),
    )


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """A throwaway database on the server of ``admin_url``; None when it is unreachable."""
    import psycopg

    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: not reachable at {admin_url}: {exc}")
        yield None
        return
    name = f"tabops_bench_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_results(results: list[Result], entities: int, lookups: int) -> None:
    print(
        f"\n{entities:,} entities x 8 features + event time; {lookups:,} random get() calls; "
        f"1% changed in the incremental write.\n"
    )
    print(
        "| backend | full write s | rewrite, nothing changed s | incremental (1%) write s "
        "| incremental counts | get p50 us | get p90 us | get p99 us | get max us |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for result in results:
        print(
            f"| {result.backend} | {result.full_write_s:.2f} | {result.unchanged_write_s:.2f} "
            f"| {result.incremental_write_s:.2f} | {result.incremental_counts} "
            f"| {result.p50_us:.0f} | {result.p90_us:.0f} | {result.p99_us:.0f} "
            f"| {result.max_us:,.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--skip-postgres", action="store_true")
    options = parser.parse_args()
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("sqlalchemy", "pandas", "orjson", "psycopg")
    )
    print(f"Python {platform.python_version()}, {versions}; {os.cpu_count()} CPUs")
    print(f"load average at start: {os.getloadavg()}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'online.db'}"
        results.append(run_backend("SQLite", url, options.entities, options.lookups))
    if not options.skip_postgres:
        with postgres_database(options.postgres_url) as url_or_none:
            if url_or_none is not None:
                results.append(
                    run_backend("PostgreSQL", url_or_none, options.entities, options.lookups)
                )
    print(f"load average at end: {os.getloadavg()}")
    print_results(results, options.entities, options.lookups)


if __name__ == "__main__":
    main()
