//! `[[sinks]]`: where samples and windows are stored (DESIGN.md §4). Every sink has the keys of
//! [`SinkCommon`] and `kind`; the rest depend on the kind, one struct per kind ([`StoreConfig`]),
//! each refusing the keys of the others (the loader reports them as "not used by kind …",
//! with file, line and key). What the keys mean is decided here once: URLs are parsed, the
//! InfluxDB API (1.x or 2.x) is chosen from the keys given, an upload's keys are grouped.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{ByteSize, HumanDuration, Secret};

/// The kind of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Mysql,
    Sqlite,
    Influx,
    Parquet,
}

impl SinkKind {
    pub const ALL: [SinkKind; 4] = [
        SinkKind::Mysql,
        SinkKind::Sqlite,
        SinkKind::Influx,
        SinkKind::Parquet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Mysql => "mysql",
            SinkKind::Sqlite => "sqlite",
            SinkKind::Influx => "influx",
            SinkKind::Parquet => "parquet",
        }
    }

    /// The keys a sink of this kind takes besides `kind` and [`SinkCommon`]'s.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            SinkKind::Mysql => &["url", "username", "password", "batch_rows", "linger"],
            SinkKind::Sqlite => &["url", "batch_rows", "linger"],
            SinkKind::Influx => &[
                "url",
                "database",
                "username",
                "password",
                "org",
                "bucket",
                "token",
                "batch_rows",
                "linger",
            ],
            SinkKind::Parquet => &[
                "dir",
                "roll_rows",
                "roll_age",
                "writer_id",
                "upload",
                "username",
                "upload_retries",
                "closed_after",
            ],
        }
    }
}

/// What a sink receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Every raw sample.
    Samples,
    /// Closed window aggregates.
    Windows,
}

/// One `[[sinks]]` entry: the keys every sink has, and its store's own.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub common: SinkCommon,
    pub store: StoreConfig,
}

/// The keys every sink has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkCommon {
    /// Unique name (letters, digits, `-`, `_`), used in status, metrics and the spool directory.
    pub name: String,
    /// Which streams to write (default both).
    #[serde(default = "default_streams")]
    pub streams: Vec<StreamKind>,
    /// Batches the sink's in-memory queue holds; beyond them batches spool to disk.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Most bytes spooled to disk (`state_dir/spool/<name>`) while the sink is behind; beyond
    /// it the oldest spooled data is dropped (counted, logged as an error).
    #[serde(default = "default_spool_limit")]
    pub spool_limit: ByteSize,
    /// Set by `millstream replay`, not in files. No live source to keep up with: a full queue
    /// makes the sender wait instead of spooling. The data may be held already: the SQL and
    /// Influx sinks keep one row per key anyway; the Parquet lake skims rows its partitions
    /// held before.
    #[serde(skip)]
    pub replay: bool,
}

impl SinkCommon {
    /// The common keys of a sink named `name`, with every default.
    pub fn named(name: &str) -> SinkCommon {
        SinkCommon {
            name: name.to_string(),
            streams: default_streams(),
            queue: default_queue(),
            spool_limit: default_spool_limit(),
            replay: false,
        }
    }

    /// The keys of this struct, as the file names them.
    pub const KEYS: [&'static str; 4] = ["name", "streams", "queue", "spool_limit"];
}

/// A store and its own keys.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Mysql(MysqlConfig),
    Sqlite(SqliteConfig),
    Influx(InfluxConfig),
    Parquet(ParquetConfig),
}

impl StoreConfig {
    pub fn kind(&self) -> SinkKind {
        match self {
            StoreConfig::Mysql(_) => SinkKind::Mysql,
            StoreConfig::Sqlite(_) => SinkKind::Sqlite,
            StoreConfig::Influx(_) => SinkKind::Influx,
            StoreConfig::Parquet(_) => SinkKind::Parquet,
        }
    }
}

impl SinkConfig {
    pub fn kind(&self) -> SinkKind {
        self.store.kind()
    }

    pub fn name(&self) -> &str {
        &self.common.name
    }

    /// The lake's directory, for a parquet sink.
    pub fn lake_dir(&self) -> Option<&std::path::Path> {
        match &self.store {
            StoreConfig::Parquet(p) => Some(&p.dir),
            _ => None,
        }
    }
}

/// A URL, parsed when the file is read; its text is kept as given (drivers take text). A
/// password in it is never shown in errors.
#[derive(Clone, PartialEq, Eq)]
pub struct SinkUrl {
    pub url: url::Url,
    text: String,
}

impl SinkUrl {
    pub fn parse(text: &str) -> Result<SinkUrl, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("bad URL {:?}: {e}", super::broker::redact(text)))?;
        if let Some(password) = url.password() {
            // Remembered, so that no later message shows it.
            let _ = Secret::new(password);
        }
        Ok(SinkUrl {
            url,
            text: text.to_string(),
        })
    }

    /// The URL as written in the file (may hold a password: never log it).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }
}

impl std::fmt::Debug for SinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", super::redact_secrets(&self.text))
    }
}

impl std::fmt::Display for SinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::redact_secrets(&self.text))
    }
}

impl<'de> Deserialize<'de> for SinkUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SinkUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `kind = "mysql"`: MySQL 8 or MariaDB.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `mysql://user@host:port/db` (`mariadb://` too).
    pub url: SinkUrl,
    /// Overrides the URL's user.
    #[serde(default)]
    pub username: Option<String>,
    /// Use `${VAR}`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Rows per write (SQLite 100,000; MySQL 20,000; InfluxDB 5,000).
    #[serde(default)]
    pub batch_rows: Option<usize>,
    /// Longest a row waits for its batch to fill (default 1s).
    #[serde(default)]
    pub linger: Option<HumanDuration>,
}

/// `kind = "sqlite"`: one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// `sqlite://path.db`.
    pub url: SinkUrl,
    /// Rows per write (SQLite 100,000; MySQL 20,000; InfluxDB 5,000).
    #[serde(default)]
    pub batch_rows: Option<usize>,
    /// Longest a row waits for its batch to fill (default 1s).
    #[serde(default)]
    pub linger: Option<HumanDuration>,
}

/// `kind = "influx"`: InfluxDB 1.x (`database`) or 2.x/3.x/Cloud (`org`, `bucket`, `token`).
#[derive(Debug, Clone)]
pub struct InfluxConfig {
    /// The base URL `http(s)://host:port`.
    pub url: SinkUrl,
    pub api: InfluxApi,
    pub batch_rows: Option<usize>,
    pub linger: Option<HumanDuration>,
}

/// Which InfluxDB write API a sink speaks, from the keys given.
#[derive(Debug, Clone)]
pub enum InfluxApi {
    /// `POST /write?db=…` with optional basic authentication.
    V1 {
        database: String,
        username: Option<String>,
        password: Option<Secret>,
    },
    /// `POST /api/v2/write?org=…&bucket=…` with a token.
    V2 {
        org: String,
        bucket: String,
        token: Secret,
    },
}

/// The InfluxDB keys as written, before the API is chosen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InfluxKeys {
    pub url: SinkUrl,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub token: Option<Secret>,
    /// Rows per write (SQLite 100,000; MySQL 20,000; InfluxDB 5,000).
    #[serde(default)]
    pub batch_rows: Option<usize>,
    /// Longest a row waits for its batch to fill (default 1s).
    #[serde(default)]
    pub linger: Option<HumanDuration>,
}

impl InfluxKeys {
    /// The API the keys choose, or why they choose none.
    pub(super) fn resolve(self) -> Result<InfluxConfig, String> {
        let api = match (self.database, self.org, self.bucket, self.token) {
            (Some(database), None, None, None) => InfluxApi::V1 {
                database,
                username: self.username,
                password: self.password,
            },
            (Some(_), ..) => {
                return Err("give either `database` (InfluxDB 1.x) or `org`, `bucket` and `token` (2.x/3.x/Cloud), not both".into());
            }
            (None, Some(_), Some(_), Some(_))
                if self.username.is_some() || self.password.is_some() =>
            {
                return Err("`username` and `password` are InfluxDB 1.x's (with `database`); 2.x/3.x/Cloud authenticates with `token`".into());
            }
            (None, Some(org), Some(bucket), Some(token)) => InfluxApi::V2 { org, bucket, token },
            (None, None, None, None) => {
                return Err(
                    "give `database` (InfluxDB 1.x) or `org`, `bucket` and `token` (2.x/3.x/Cloud)"
                        .into(),
                );
            }
            (None, ..) => return Err("InfluxDB 2.x needs `org`, `bucket` and `token`".into()),
        };
        Ok(InfluxConfig {
            url: self.url,
            api,
            batch_rows: self.batch_rows,
            linger: self.linger,
        })
    }
}

/// `kind = "parquet"`: the lake.
#[derive(Debug, Clone)]
pub struct ParquetConfig {
    /// The lake's directory.
    pub dir: PathBuf,
    /// Complete a file after this many rows (default 1,000,000).
    pub roll_rows: Option<u64>,
    /// Complete a file after this long (default 1m).
    pub roll_age: Option<HumanDuration>,
    /// This writer's part of file names (default: unique per process run).
    pub writer_id: Option<String>,
    /// Copy closed partitions to HDFS.
    pub upload: Option<UploadConfig>,
}

/// Where and how closed partitions are copied (WebHDFS).
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// `webhdfs://namenode:9870/path` (`swebhdfs://` for TLS).
    pub url: SinkUrl,
    /// The WebHDFS user.
    pub username: Option<String>,
    /// Attempts per request before the partition waits for the next round (default 5).
    pub retries: Option<u32>,
    /// A partition is closed this long after its time range ended (default 1h).
    pub closed_after: Option<HumanDuration>,
}

/// The parquet keys as written, before the upload's are grouped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParquetKeys {
    pub dir: PathBuf,
    #[serde(default)]
    pub roll_rows: Option<u64>,
    #[serde(default)]
    pub roll_age: Option<HumanDuration>,
    #[serde(default)]
    pub writer_id: Option<String>,
    #[serde(default)]
    pub upload: Option<SinkUrl>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub upload_retries: Option<u32>,
    #[serde(default)]
    pub closed_after: Option<HumanDuration>,
}

impl ParquetKeys {
    /// The configuration, or the keys given without an `upload` they belong to.
    pub(super) fn resolve(self) -> Result<ParquetConfig, Vec<&'static str>> {
        let upload = match self.upload {
            Some(url) => Some(UploadConfig {
                url,
                username: self.username,
                retries: self.upload_retries,
                closed_after: self.closed_after,
            }),
            None => {
                let stray: Vec<&'static str> = [
                    ("username", self.username.is_some()),
                    ("upload_retries", self.upload_retries.is_some()),
                    ("closed_after", self.closed_after.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, given)| given.then_some(k))
                .collect();
                if !stray.is_empty() {
                    return Err(stray);
                }
                None
            }
        };
        Ok(ParquetConfig {
            dir: self.dir,
            roll_rows: self.roll_rows,
            roll_age: self.roll_age,
            writer_id: self.writer_id,
            upload,
        })
    }
}

pub(super) fn default_streams() -> Vec<StreamKind> {
    vec![StreamKind::Samples, StreamKind::Windows]
}

fn default_queue() -> usize {
    // Batches of up to 16,384 samples: 16 bounds a sink's queue near 16 MB; the spool takes
    // the rest.
    16
}

fn default_spool_limit() -> ByteSize {
    ByteSize::mib(1024)
}

impl SinkConfig {
    /// A MySQL sink with every default (for tests and benchmarks).
    pub fn mysql(name: &str, url: &str) -> Result<SinkConfig, String> {
        Ok(SinkConfig {
            common: SinkCommon::named(name),
            store: StoreConfig::Mysql(MysqlConfig {
                url: SinkUrl::parse(url)?,
                username: None,
                password: None,
                batch_rows: None,
                linger: None,
            }),
        })
    }

    /// A SQLite sink with every default.
    pub fn sqlite(name: &str, url: &str) -> Result<SinkConfig, String> {
        Ok(SinkConfig {
            common: SinkCommon::named(name),
            store: StoreConfig::Sqlite(SqliteConfig {
                url: SinkUrl::parse(url)?,
                batch_rows: None,
                linger: None,
            }),
        })
    }

    /// An InfluxDB sink with every default.
    pub fn influx(name: &str, url: &str, api: InfluxApi) -> Result<SinkConfig, String> {
        Ok(SinkConfig {
            common: SinkCommon::named(name),
            store: StoreConfig::Influx(InfluxConfig {
                url: SinkUrl::parse(url)?,
                api,
                batch_rows: None,
                linger: None,
            }),
        })
    }

    /// A parquet sink with every default.
    pub fn parquet(name: &str, dir: impl Into<PathBuf>) -> SinkConfig {
        SinkConfig {
            common: SinkCommon::named(name),
            store: StoreConfig::Parquet(ParquetConfig {
                dir: dir.into(),
                roll_rows: None,
                roll_age: None,
                writer_id: None,
                upload: None,
            }),
        }
    }

    /// Sets the batching of a SQL or InfluxDB sink (a parquet sink has none: unchanged).
    pub fn with_batching(
        mut self,
        batch_rows: Option<usize>,
        linger: Option<HumanDuration>,
    ) -> Self {
        if let Some((rows, wait)) = self.batching() {
            *rows = batch_rows;
            *wait = linger;
        }
        self
    }

    /// The batching keys (`batch_rows`, `linger`) of a SQL or InfluxDB sink.
    pub fn batching(&mut self) -> Option<(&mut Option<usize>, &mut Option<HumanDuration>)> {
        match &mut self.store {
            StoreConfig::Mysql(c) => Some((&mut c.batch_rows, &mut c.linger)),
            StoreConfig::Sqlite(c) => Some((&mut c.batch_rows, &mut c.linger)),
            StoreConfig::Influx(c) => Some((&mut c.batch_rows, &mut c.linger)),
            StoreConfig::Parquet(_) => None,
        }
    }
}
