-- millstream SQL layout for MySQL 8 and MariaDB 10.5+ (DESIGN.md §5). Created if missing.
-- Times are UTC DATETIME(3) (no time zone conversion happens on DATETIME columns).
-- Writes are idempotent: a re-delivered sample is ignored, a recomputed window replaces its row.
-- ROW_FORMAT=DYNAMIC and utf8mb4: the (device, item, ts) key fits InnoDB's 3072-byte limit.

CREATE TABLE IF NOT EXISTS samples (
    device VARCHAR(64)   NOT NULL,
    item   VARCHAR(64)   NOT NULL,
    ts     DATETIME(3)   NOT NULL,
    value  DOUBLE        NULL,
    text   VARCHAR(1024) NULL,
    PRIMARY KEY (device, item, ts)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS window_aggregates (
    device  VARCHAR(64) NOT NULL,
    item    VARCHAR(64) NOT NULL,
    size_ms INT         NOT NULL,
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
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
