#!/usr/bin/env python3
"""The lake as a data product: Spark (`spark.read.parquet(dir)` with partition discovery),
DuckDB (`read_parquet(..., hive_partitioning=true)`) and pyarrow datasets each read a millstream
lake as-is. For every reader: timestamps come out as timestamps, the partition columns are
recognised, the sample rows are as many as expected, and per-minute count/min/max/mean of
every numeric (device, item) equal `millstream analyze --every 1m --format json` (given as a
file; count, min and max exactly, mean to 1e-9 relative).

    scripts/check-readers.py LAKE --samples N --analyze FILE [--readers spark,duckdb,pyarrow]

Exit 0 when everything holds; otherwise one line per problem and exit 1."""
import argparse
import json
import math
import pathlib
import sys


def compare(reader, got, want, problems):
    """got/want: {(device, item, start): (count, min, max, mean)}"""
    if set(got) != set(want):
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        problems.append(f"{reader}: windows differ from analyze (missing {missing}, extra {extra})")
        return
    for key, (c, lo, hi, mean) in want.items():
        gc, glo, ghi, gmean = got[key]
        if (gc, glo, ghi) != (c, lo, hi) or not math.isclose(gmean, mean, rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{reader}: {key}: {(gc, glo, ghi, gmean)} vs analyze {(c, lo, hi, mean)}")
            return


def spark_check(lake, samples, want, problems):
    from pyspark.sql import SparkSession, functions as F, types as T

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("millstream-lake-check")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(str(lake / "samples"))
    types = {f.name: f.dataType for f in df.schema.fields}
    if not isinstance(types.get("ts"), T.TimestampType):
        problems.append(f"spark: ts is {types.get('ts')}, not a timestamp")
    if not isinstance(types.get("date"), T.DateType):
        problems.append(f"spark: partition column date is {types.get('date')}, not a date")
    if not isinstance(types.get("hour"), T.IntegerType):
        problems.append(f"spark: partition column hour is {types.get('hour')}, not an integer")
    n = df.count()
    if n != samples:
        problems.append(f"spark: {n} sample rows, expected {samples}")
    rows = (
        df.where(F.col("value").isNotNull())
        .groupBy("device", "item", (F.floor(F.unix_millis("ts") / 60000) * 60000).cast("long").alias("start"))
        .agg(F.count("value"), F.min("value"), F.max("value"), F.avg("value"))
        .collect()
    )
    compare("spark", {(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in rows}, want, problems)
    windows = spark.read.parquet(str(lake / "windows"))
    wtypes = {f.name: f.dataType for f in windows.schema.fields}
    for column in ("start", "end"):
        if not isinstance(wtypes.get(column), T.TimestampType):
            problems.append(f"spark: windows.{column} is {wtypes.get(column)}, not a timestamp")
    if "size" not in wtypes or windows.count() == 0:
        problems.append("spark: windows without the size partition or rows")
    spark.stop()


def duckdb_check(lake, samples, want, problems):
    import duckdb

    con = duckdb.connect()
    source = f"read_parquet('{lake}/samples/**/*.parquet', hive_partitioning = true)"
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {source})").fetchall())
    if not types.get("ts", "").startswith("TIMESTAMP"):
        problems.append(f"duckdb: ts is {types.get('ts')}, not a timestamp")
    if types.get("date") != "DATE":
        problems.append(f"duckdb: partition column date is {types.get('date')}, not a date")
    n = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    if n != samples:
        problems.append(f"duckdb: {n} sample rows, expected {samples}")
    rows = con.execute(
        f"""SELECT device, item, (epoch_ms(ts) // 60000) * 60000, count(value), min(value), max(value), avg(value)
            FROM {source} WHERE value IS NOT NULL GROUP BY ALL"""
    ).fetchall()
    compare("duckdb", {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}, want, problems)


def pyarrow_check(lake, samples, want, problems):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(lake / "samples"), format="parquet", partitioning="hive")
    ts = dataset.schema.field("ts").type
    if not pa.types.is_timestamp(ts):
        problems.append(f"pyarrow: ts is {ts}, not a timestamp")
    for column in ("date", "hour"):
        if column not in dataset.schema.names:
            problems.append(f"pyarrow: partition column {column} not recognised")
    table = dataset.to_table(columns=["device", "item", "ts", "value"])
    if table.num_rows != samples:
        problems.append(f"pyarrow: {table.num_rows} sample rows, expected {samples}")
    table = table.filter(pc.is_valid(table["value"]))
    millis = pc.cast(pc.cast(table["ts"], pa.timestamp("ms")), pa.int64())
    start = pc.multiply(pc.divide(millis, 60000), 60000)
    grouped = (
        pa.table({"device": table["device"], "item": table["item"], "start": start, "value": table["value"]})
        .group_by(["device", "item", "start"])
        .aggregate([("value", "count"), ("value", "min"), ("value", "max"), ("value", "mean")])
        .to_pylist()
    )
    got = {
        (r["device"], r["item"], r["start"]): (r["value_count"], r["value_min"], r["value_max"], r["value_mean"])
        for r in grouped
    }
    compare("pyarrow", got, want, problems)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("lake")
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--analyze", required=True)
    p.add_argument("--readers", default="spark,duckdb,pyarrow")
    a = p.parse_args()
    lake = pathlib.Path(a.lake)
    want = {}
    for line in open(a.analyze):
        w = json.loads(line)
        want[(w["device"], w["item"], w["start"])] = (w["count"], w["min"], w["max"], w["mean"])
    if not want:
        print("analyze gave no windows", file=sys.stderr)
        return 1
    problems = []
    checks = {"spark": spark_check, "duckdb": duckdb_check, "pyarrow": pyarrow_check}
    for reader in a.readers.split(","):
        checks[reader](lake, a.samples, want, problems)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{a.readers}: {a.samples} samples, {len(want)} windows as analyze computed them")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
