#!/usr/bin/env python3
"""Windowed statistics over a millstream lake computed by DuckDB alone: the independent
reference for `millstream analyze` and `GET /api/v1/history` (tests), and the comparison in the
analyze benchmark. Prints one JSON object per window (device, item, start, end, count, min, max,
mean, stddev, p50, p95, p99, first, last), ordered by device, item and start; the seconds the
query took go to stderr.

    scripts/duckdb-windows.py LAKE_DIR --every-ms 60000 [--device D] [--item I] [--from MS] [--to MS]
"""
import argparse
import json
import sys
import time

import duckdb


def main():
    p = argparse.ArgumentParser()
    p.add_argument("lake")
    p.add_argument("--every-ms", type=int, required=True)
    p.add_argument("--device")
    p.add_argument("--item")
    p.add_argument("--from", dest="from_ms", type=int)
    p.add_argument("--to", dest="to_ms", type=int)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    where = ["value IS NOT NULL"]
    params = []
    if a.device:
        where.append("device = ?")
        params.append(a.device)
    if a.item:
        where.append("item = ?")
        params.append(a.item)
    if a.from_ms is not None:
        where.append("epoch_ms(ts) >= ?")
        params.append(a.from_ms)
    if a.to_ms is not None:
        where.append("epoch_ms(ts) < ?")
        params.append(a.to_ms)
    every = int(a.every_ms)
    query = f"""
        SELECT device, item, start, start + {every} AS "end", count(value) AS count,
               min(value) AS min, max(value) AS max, avg(value) AS mean,
               stddev_samp(value) AS stddev,
               quantile_cont(value, 0.5) AS p50, quantile_cont(value, 0.95) AS p95,
               quantile_cont(value, 0.99) AS p99,
               arg_min(value, ts) AS first, arg_max(value, ts) AS last
        FROM (
            SELECT device, item, ts, value, (epoch_ms(ts) // {every}) * {every} AS start
            FROM read_parquet('{a.lake}/samples/**/*.parquet', hive_partitioning = true)
            WHERE {' AND '.join(where)}
        )
        GROUP BY device, item, start
        ORDER BY device, item, start
    """
    started = time.monotonic()
    rows = con.execute(query, params).fetchall()
    elapsed = time.monotonic() - started
    names = ["device", "item", "start", "end", "count", "min", "max", "mean", "stddev",
             "p50", "p95", "p99", "first", "last"]
    out = sys.stdout
    for row in rows:
        out.write(json.dumps(dict(zip(names, row))) + "\n")
    print(f"duckdb: {len(rows)} windows in {elapsed:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
