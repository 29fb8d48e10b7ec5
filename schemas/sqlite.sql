-- millstream SQL layout for SQLite (DESIGN.md §5). Created if missing.
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS.mmm' (DATETIME(3)); SQLite's date functions read them.
-- Writes are idempotent: a re-delivered sample is ignored, a recomputed window replaces its row.

CREATE TABLE IF NOT EXISTS samples (
    device VARCHAR(64)   NOT NULL,
    item   VARCHAR(64)   NOT NULL,
    ts     DATETIME(3)   NOT NULL,
    value  DOUBLE        NULL,
    text   VARCHAR(1024) NULL,
    PRIMARY KEY (device, item, ts)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS window_aggregates (
    device  VARCHAR(64) NOT NULL,
    item    VARCHAR(64) NOT NULL,
    size_ms INTEGER     NOT NULL,
    start   DATETIME(3) NOT NULL,
    count   BIGINT      NOT NULL,
    min     DOUBLE NULL,
    max     DOUBLE NULL,
    mean    DOUBLE NULL,
    stddev  DOUBLE NULL,
    p50     DOUBLE NULL,
    p95     DOUBLE NULL,
    p99     DOUBLE NULL,
    first   DOUBLE NULL,
    last    DOUBLE NULL,
    PRIMARY KEY (device, item, size_ms, start)
) WITHOUT ROWID;
