#!/usr/bin/env python3
"""Independent check of a millstream Parquet lake with DuckDB and pyarrow: the Hive partitions
are recognised, timestamps are timestamps, no file is left hidden, and the rows of the given
devices are as many as expected.

    scripts/check-lake.py LAKE_DIR --devices D1,D2 --samples N [--windows-at-least M]

Exit 0 when everything holds; otherwise one line per problem and exit 1."""
import argparse
import pathlib
import sys

import duckdb
import pyarrow.dataset as ds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("lake")
    p.add_argument("--devices", required=True)
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--windows-at-least", type=int, default=1)
    a = p.parse_args()
    lake = pathlib.Path(a.lake)
    devices = a.devices.split(",")
    problems = []

    hidden = [f for f in lake.rglob(".*") if f.is_file()]
    if hidden:
        problems.append(f"hidden (incomplete) files left: {[str(h) for h in hidden[:5]]}")

    quoted = ",".join(f"'{d}'" for d in devices)
    con = duckdb.connect()
    rows = con.execute(
        f"select count(*), count(distinct device), min(typeof(ts)), min(typeof(date)), min(typeof(hour)) "
        f"from read_parquet('{lake}/samples/**/*.parquet', hive_partitioning=true) where device in ({quoted})"
    ).fetchone()
    count, distinct, ts_type, date_type, hour_type = rows
    if count != a.samples:
        problems.append(f"duckdb: {count} samples of {devices}, expected {a.samples}")
    if distinct != len(devices):
        problems.append(f"duckdb: {distinct} of {len(devices)} devices present")
    if not ts_type or not ts_type.startswith("TIMESTAMP"):
        problems.append(f"duckdb: ts is {ts_type}, not a timestamp")
    if date_type is None or hour_type is None:
        problems.append("duckdb: the date/hour partition columns were not recognised")
    windows = con.execute(
        f"select count(*), min(typeof(start)), count(distinct size) "
        f"from read_parquet('{lake}/windows/**/*.parquet', hive_partitioning=true) where device in ({quoted})"
    ).fetchone()
    if windows[0] < a.windows_at_least:
        problems.append(f"duckdb: {windows[0]} windows, expected at least {a.windows_at_least}")
    if windows[0] and not windows[1].startswith("TIMESTAMP"):
        problems.append(f"duckdb: window start is {windows[1]}")

    table = ds.dataset(lake / "samples", format="parquet", partitioning="hive").to_table()
    names = table.schema.names
    for column in ["device", "item", "ts", "value", "text", "date", "hour"]:
        if column not in names:
            problems.append(f"pyarrow: no column {column} (has {names})")
    if "ts" in names and str(table.schema.field("ts").type) != "timestamp[ms, tz=UTC]":
        problems.append(f"pyarrow: ts is {table.schema.field('ts').type}")
    mine = sum(1 for d in table.column("device").to_pylist() if d in devices)
    if mine != a.samples:
        problems.append(f"pyarrow: {mine} samples of {devices}, expected {a.samples}")

    for line in problems:
        print(line)
    if not problems:
        print(f"lake ok: {count} samples of {len(devices)} devices, {windows[0]} windows ({windows[2]} sizes)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
