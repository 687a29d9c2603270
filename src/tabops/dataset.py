"""Reading tables from files (CSV, Parquet, SQLite) and fingerprinting them."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from tabops.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def table_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``sqlite``, from the file name.

    Raises:
        DataError: the suffix names no format tabops reads.
    """
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(SQLITE_SUFFIXES):
        return "sqlite"
    raise DataError(
        f"{path.name}: unknown table format; use .csv (optionally .gz), .parquet or .db (SQLite)"
    )


def read_table(path: Path, options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a whole table from a CSV, Parquet or SQLite file.

    Args:
        path: the file; its suffix decides the format.
        options: reader options: for CSV, ``pandas.read_csv`` keyword arguments; for SQLite,
            ``table`` (needed when the file holds more than one table).

    Raises:
        DataError: the file is missing, unreadable or empty.
    """
    options = dict(options or {})
    if not path.is_file():
        raise DataError(f"no data file at {path}")
    kind = table_format(path)
    try:
        frame: pd.DataFrame
        if kind == "csv":
            frame = pd.read_csv(path, **options)
        elif kind == "parquet":
            frame = pd.read_parquet(path, **options)
        else:
            frame = _read_sqlite(path, options.get("table"))
    except DataError:
        raise
    except (OSError, ValueError, pd.errors.ParserError, sqlite3.Error) as exc:
        raise DataError(f"cannot read {path.name}: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path.name} holds no rows")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _read_sqlite(path: Path, table: str | None) -> pd.DataFrame:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        if table is None:
            if len(tables) != 1:
                raise DataError(
                    f"{path.name} holds tables {tables}; name one with the 'table' read option"
                )
            table = tables[0]
        if table not in tables:
            raise DataError(f"{path.name} has no table {table!r}; it has {tables}")
        quoted = table.replace('"', '""')
        frame: pd.DataFrame = pd.read_sql_query(f'SELECT * FROM "{quoted}"', connection)
        return frame


def fingerprint_file(path: Path) -> str:
    """The sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
