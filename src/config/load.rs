//! Loading a pipeline file so that every problem is reported at once, each with the file, line
//! and key it concerns.
//!
//! TOML is parsed into a tree that keeps source positions; `${VAR}`s are expanded in every
//! string; each section (and each `[[sinks]]` entry) is then deserialized on its own, so a
//! mistake in one does not hide a mistake in another; last come the checks that involve
//! several keys. An error position is mapped back to the innermost key whose text contains it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::env::expand;
use super::sinks::{InfluxKeys, ParquetKeys};
use super::{
    Config, DeadLetterConfig, HttpConfig, SinkCommon, SinkConfig, SinkKind, SourceConfig,
    StoreConfig, StreamKind, WalConfig, WindowsConfig,
};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `source.poll.interval` or `sinks[1].url`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads a pipeline file, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    load_str(&text, &file, |name| std::env::var(name).ok())
}

/// Loads pipeline text; `file` names it in errors; `lookup` resolves `${VAR}`.
pub fn load_str(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        text,
        file,
        errors: Vec::new(),
        keys: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span();
            ctx.push(span, None, e.message().trim().to_string());
        }
        return Err(ctx.finish());
    }
    let mut root = root.into_inner();
    index_table(&root, "", &mut ctx.keys);
    expand_table(&mut root, "", &lookup, &mut ctx);

    let mut state_dir = PathBuf::from("millstream-data/state");
    let mut source: Option<SourceConfig> = None;
    let mut source_seen = false;
    let mut windows = WindowsConfig::default();
    let mut http = HttpConfig::default();
    let mut dead_letters = DeadLetterConfig::default();
    let mut wal = WalConfig::default();
    let mut sinks: Vec<(usize, SinkConfig)> = Vec::new();
    for (key, value) in root {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "state_dir" => {
                if let Some(v) = ctx.section::<PathBuf>(value) {
                    state_dir = v;
                }
            }
            "source" => {
                source_seen = true;
                source = ctx.section(value);
            }
            "windows" => windows = ctx.section(value).unwrap_or(windows),
            "http" => http = ctx.section(value).unwrap_or(http),
            "dead_letters" => dead_letters = ctx.section(value).unwrap_or(dead_letters),
            "wal" => wal = ctx.section(value).unwrap_or(wal),
            "sinks" => {
                let span = value.span();
                match value.into_inner() {
                    DeValue::Array(entries) => {
                        for (i, entry) in entries.into_iter().enumerate() {
                            if let Some(sink) = ctx.sink(i, entry) {
                                sinks.push((i, sink));
                            }
                        }
                    }
                    _ => ctx.push(
                        Some(span),
                        Some("sinks".into()),
                        "must be an array of tables: write [[sinks]]".into(),
                    ),
                }
            }
            other => ctx.push(
                Some(key_span),
                Some(other.to_string()),
                "unknown key (expected state_dir, source, windows, http, sinks, wal or dead_letters)"
                    .into(),
            ),
        }
    }
    if !source_seen {
        ctx.errors.push(ConfigError {
            file: file.to_string(),
            line: None,
            key: Some("source".into()),
            message: "missing [source] section with the broker `url`".into(),
        });
    }
    if let Some(source) = &source {
        check_source(source, &mut ctx);
    }
    check_windows(&windows, &mut ctx);
    check_http(&http, &mut ctx);
    check_sinks(&sinks, &mut ctx);
    if !ctx.errors.is_empty() {
        return Err(ctx.finish());
    }
    Ok(Config {
        state_dir,
        source: source.expect("checked above"),
        windows,
        http,
        sinks: sinks.into_iter().map(|(_, s)| s).collect(),
        dead_letters,
        wal,
    })
}

/// Key paths with the span of the key and of its value.
type KeyIndex = Vec<(String, Range<usize>, Range<usize>)>;

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
    keys: KeyIndex,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The innermost key whose key or value text contains `span`.
    fn key_at(&self, span: &Range<usize>) -> Option<String> {
        self.keys
            .iter()
            .filter(|(_, key, value)| {
                let inside =
                    |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
                inside(key) || inside(value)
            })
            .max_by_key(|(path, _, _)| path.len())
            .map(|(path, _, _)| path.clone())
    }

    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        self.keys
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, key, _)| key.clone())
    }

    fn push(&mut self, span: Option<Range<usize>>, key: Option<String>, message: String) {
        let key = key.or_else(|| span.as_ref().and_then(|s| self.key_at(s)));
        let line = span.map(|s| self.line_of(s.start));
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            key,
            message,
        });
    }

    /// An error about the key at `path` (which must exist in the file for a line to be shown).
    fn at(&mut self, path: &str, message: impl Into<String>) {
        let span = self.span_of(path);
        let line = span.map(|s| self.line_of(s.start));
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            key: Some(path.to_string()),
            message: message.into(),
        });
    }

    /// Deserializes one section. serde stops at the first problem, so after each error the
    /// offending key is taken out and the section tried again, to report the rest too.
    fn section<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>) -> Option<T> {
        self.section_with(value, |m| m)
    }

    /// [`Ctx::section`], with each serde message passed through `explain` first.
    fn section_with<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        explain: impl Fn(String) -> String,
    ) -> Option<T> {
        self.section_reading(value, explain, false)
    }

    /// Deserializes a section, reporting every problem. With `past_unknown`, the value is
    /// returned if the only problems were keys it does not take (they are reported, and the
    /// rest can still be checked); otherwise only a value without problems is.
    fn section_reading<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        explain: impl Fn(String) -> String,
        past_unknown: bool,
    ) -> Option<T> {
        let mut value = value;
        let mut removed: Vec<String> = Vec::new();
        let mut only_unknown = true;
        for _ in 0..64 {
            let whole = value.span();
            match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(v) => {
                    return (removed.is_empty() || (past_unknown && only_unknown)).then_some(v);
                }
                Err(e) => {
                    let message = e.message().trim().to_string();
                    only_unknown &= message.starts_with("unknown field `");
                    // A key taken out after an error of its own is not missing as well.
                    if removed
                        .iter()
                        .any(|k| message.contains(&format!("missing field `{k}`")))
                    {
                        return None;
                    }
                    let span = refine(&value, e.span().unwrap_or(whole), &message);
                    self.push(Some(span.clone()), None, explain(message));
                    if !remove_at(&mut value, &span, &mut removed) {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Reads one `[[sinks]]` entry: `kind` first, then the keys every sink has and the keys
    /// of its kind, each part on its own (so both report their problems). A key of another
    /// kind is "not used by kind …"; a missing required key says which kind needs it.
    fn sink(&mut self, i: usize, entry: Spanned<DeValue<'_>>) -> Option<SinkConfig> {
        let span = entry.span();
        let at = format!("sinks[{i}]");
        let DeValue::Table(table) = entry.get_ref() else {
            self.push(Some(span), Some(at), "must be a table".into());
            return None;
        };
        let Some((_, kind_value)) = table.iter().find(|(k, _)| k.get_ref() == "kind") else {
            self.push(
                Some(span),
                Some(at),
                "missing `kind` (mysql, sqlite, influx or parquet)".into(),
            );
            return None;
        };
        let kind: Option<SinkKind> = self.section(kind_value.clone());
        let mut common = DeTable::new();
        let mut own = DeTable::new();
        for (k, v) in table.iter() {
            let key: &str = k.get_ref();
            if SinkCommon::KEYS.contains(&key) {
                common.insert(k.clone(), v.clone());
            } else if key != "kind" {
                own.insert(k.clone(), v.clone());
            }
        }
        let common_value = Spanned::new(span.clone(), DeValue::Table(common));
        let own_value = Spanned::new(span.clone(), DeValue::Table(own));
        let common: Option<SinkCommon> = self.section_with(common_value, |m| m);
        let kind = kind?;
        let name = kind.as_str();
        let explain = |message: String| -> String {
            if let Some(field) = quoted_after(&message, "unknown field `") {
                if SinkKind::ALL.iter().any(|k| k.keys().contains(&field)) {
                    return format!("not used by kind {name:?}");
                }
                return format!(
                    "unknown key `{field}` (kind {name:?} takes {}, besides {})",
                    kind.keys().join(", "),
                    SinkCommon::KEYS.join(", ")
                );
            }
            if let Some(field) = quoted_after(&message, "missing field `") {
                return format!("kind {name:?} needs `{field}`");
            }
            message
        };
        // Keys of another kind are reported; the rest of the entry is still checked.
        let store = match kind {
            SinkKind::Mysql => self
                .section_reading(own_value, explain, true)
                .map(StoreConfig::Mysql),
            SinkKind::Sqlite => self
                .section_reading(own_value, explain, true)
                .map(StoreConfig::Sqlite),
            SinkKind::Influx => self
                .section_reading::<InfluxKeys>(own_value, explain, true)
                .and_then(|keys| match keys.resolve() {
                    Ok(c) => Some(StoreConfig::Influx(c)),
                    Err(e) => {
                        self.at(&at, e);
                        None
                    }
                }),
            SinkKind::Parquet => self
                .section_reading::<ParquetKeys>(own_value, explain, true)
                .and_then(|keys| match keys.resolve() {
                    Ok(c) => Some(StoreConfig::Parquet(c)),
                    Err(stray) => {
                        for key in stray {
                            self.at(
                                &format!("{at}.{key}"),
                                "only with `upload` (the WebHDFS copy it configures)",
                            );
                        }
                        None
                    }
                }),
        };
        Some(SinkConfig {
            common: common?,
            store: store?,
        })
    }

    fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        ConfigErrors(self.errors)
    }
}

/// serde's error for a bad array element spans the whole array; when the message quotes one
/// element's text (as the value types' errors do), narrow the span to that element.
fn refine(value: &Spanned<DeValue<'_>>, span: Range<usize>, message: &str) -> Range<usize> {
    fn find<'v, 'i>(
        v: &'v Spanned<DeValue<'i>>,
        span: &Range<usize>,
    ) -> Option<&'v Spanned<DeValue<'i>>> {
        if v.span() == *span {
            return Some(v);
        }
        match v.get_ref() {
            DeValue::Table(t) => t.iter().find_map(|(_, v)| find(v, span)),
            DeValue::Array(items) => items.iter().find_map(|v| find(v, span)),
            _ => None,
        }
    }
    if let Some(node) = find(value, &span)
        && let DeValue::Array(items) = node.get_ref()
    {
        let quoted = items.iter().find(|item| match item.get_ref() {
            DeValue::String(s) => message.contains(&format!("{:?}", s.as_ref())),
            _ => false,
        });
        if let Some(item) = quoted {
            return item.span();
        }
    }
    span
}

/// Removes the innermost key (or array element) of `value` whose text contains `span`, and
/// notes its name in `removed`. False when nothing inside `value` contains it.
fn remove_at(
    value: &mut Spanned<DeValue<'_>>,
    span: &Range<usize>,
    removed: &mut Vec<String>,
) -> bool {
    let inside = |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
    match value.get_mut() {
        DeValue::Table(table) => {
            let mut hit = None;
            for (key, v) in table.iter_mut() {
                if inside(&key.span()) || inside(&v.span()) {
                    if !inside(&key.span()) && remove_at(v, span, removed) {
                        return true;
                    }
                    hit = Some(key.get_ref().to_string());
                    break;
                }
            }
            match hit {
                Some(key) => {
                    table.remove(key.as_str());
                    removed.push(key);
                    true
                }
                None => false,
            }
        }
        DeValue::Array(items) => {
            let Some(i) = items.iter().position(|v| inside(&v.span())) else {
                return false;
            };
            if remove_at(&mut items.as_mut()[i], span, removed) {
                return true;
            }
            let kept: Vec<_> = std::mem::replace(items, toml::de::DeArray::new())
                .into_iter()
                .enumerate()
                .filter_map(|(j, v)| (j != i).then_some(v))
                .collect();
            *items = kept.into_iter().collect();
            true
        }
        _ => false,
    }
}

/// The text between `prefix` and the next backtick in `message` (serde names fields so).
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    Some(&rest[..rest.find('`')?])
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn index_table(table: &DeTable<'_>, prefix: &str, out: &mut KeyIndex) {
    for (key, value) in table.iter() {
        let path = join(prefix, key.get_ref());
        out.push((path.clone(), key.span(), value.span()));
        index_value(value, &path, out);
    }
}

fn index_value(value: &Spanned<DeValue<'_>>, path: &str, out: &mut KeyIndex) {
    match value.get_ref() {
        DeValue::Table(t) => index_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                out.push((item_path.clone(), item.span(), item.span()));
                index_value(item, &item_path, out);
            }
        }
        _ => {}
    }
}

fn expand_table(
    table: &mut DeTable<'_>,
    prefix: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    ctx: &mut Ctx<'_>,
) {
    for (key, value) in table.iter_mut() {
        let path = join(prefix, key.get_ref());
        expand_value(value, &path, lookup, ctx);
    }
}

fn expand_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    ctx: &mut Ctx<'_>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s, lookup) {
            Ok(expanded) => *s = expanded.into(),
            Err(message) => ctx.push(Some(span), Some(path.to_string()), message),
        },
        DeValue::Table(t) => expand_table(t, path, lookup, ctx),
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}[{i}]"), lookup, ctx);
            }
        }
        _ => {}
    }
}

fn check_source(source: &SourceConfig, ctx: &mut Ctx<'_>) {
    if source.client_id.trim().is_empty() {
        ctx.at(
            "source.client_id",
            "must not be empty (the broker keeps the session under it)",
        );
    }
    if source.max_payload > source.max_packet_size {
        ctx.at(
            "source.max_payload",
            format!(
                "{} is larger than max_packet_size {}: oversized messages would drop the connection instead of being dead-lettered",
                source.max_payload, source.max_packet_size
            ),
        );
    }
    if source.keep_alive.as_millis() < 1_000 {
        ctx.at("source.keep_alive", "must be at least 1s");
    }
    if let Some(tls) = &source.tls {
        if !source.url.tls {
            ctx.at(
                "source.tls",
                "TLS settings given but source.url is mqtt://; use mqtts://",
            );
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            ctx.at("source.tls", "client_cert and client_key go together");
        }
    }
    if let Some(poll) = &source.poll {
        if poll.interval.as_millis() == 0 {
            ctx.at("source.poll.interval", "must be more than 0");
        }
        if poll.items.is_empty() {
            ctx.at(
                "source.poll.items",
                "list at least one NC-Link item id to poll",
            );
        }
    }
}

fn check_http(http: &HttpConfig, ctx: &mut Ctx<'_>) {
    if http
        .token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        ctx.at(
            "http.token",
            "is empty (an unset ${VAR}?): an empty token would let anyone in; set it or remove the key",
        );
    }
    if let Err(e) = crate::config::check_exposure(http.listen, http.token.as_ref(), http.allow_open)
    {
        ctx.at("http.listen", e);
    }
    for (i, host) in http.allowed_hosts.iter().enumerate() {
        let name = host.strip_prefix("*.").unwrap_or(host);
        if name.is_empty() || name.contains(['/', ':', ' ', '*']) {
            ctx.at(
                &format!("http.allowed_hosts[{i}]"),
                format!(
                    "{host:?}: give a host name, like dashboard.plant.example or *.plant.example"
                ),
            );
        }
    }
    if http.sse_clients == 0 {
        ctx.at("http.sse_clients", "must be at least 1");
    }
}

fn check_windows(windows: &WindowsConfig, ctx: &mut Ctx<'_>) {
    for (i, size) in windows.tumbling.iter().enumerate() {
        if size.as_millis() == 0 {
            ctx.at(
                &format!("windows.tumbling[{i}]"),
                "window size must be more than 0",
            );
        }
    }
    for (i, sliding) in windows.sliding.iter().enumerate() {
        let at = format!("windows.sliding[{i}]");
        if sliding.size.as_millis() == 0 || sliding.every.as_millis() == 0 {
            ctx.at(&at, "size and every must be more than 0");
        } else if sliding.every > sliding.size {
            ctx.at(
                &at,
                format!(
                    "every ({}) is longer than size ({})",
                    sliding.every, sliding.size
                ),
            );
        }
    }
}

fn check_sinks(sinks: &[(usize, SinkConfig)], ctx: &mut Ctx<'_>) {
    let mut names: Vec<&str> = Vec::new();
    for (i, sink) in sinks {
        let at = |key: &str| format!("sinks[{i}].{key}");
        let common = &sink.common;
        let name_ok = !common.name.is_empty()
            && common
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            ctx.at(
                &at("name"),
                format!("{:?}: use letters, digits, - and _", common.name),
            );
        } else if names.contains(&common.name.as_str()) {
            ctx.at(
                &at("name"),
                format!("{:?} is used by another sink", common.name),
            );
        }
        names.push(&common.name);
        if common.streams.is_empty() {
            ctx.at(&at("streams"), "list samples, windows or both");
        }
        for stream in [StreamKind::Samples, StreamKind::Windows] {
            if common.streams.iter().filter(|s| **s == stream).count() > 1 {
                ctx.at(&at("streams"), "a stream is listed twice");
                break;
            }
        }
        if common.queue == 0 {
            ctx.at(&at("queue"), "must be at least 1");
        }
        let scheme = |ctx: &mut Ctx<'_>, url: &super::SinkUrl, key: &str, schemes: &[&str]| {
            if !schemes.contains(&url.scheme()) {
                ctx.at(
                    &at(key),
                    format!("scheme {:?} is not {}", url.scheme(), schemes.join(" or ")),
                );
                return false;
            }
            true
        };
        match &sink.store {
            StoreConfig::Mysql(m) => {
                if scheme(ctx, &m.url, "url", &["mysql", "mariadb"])
                    && m.url.url.path().trim_start_matches('/').is_empty()
                {
                    ctx.at(
                        &at("url"),
                        "name the database: mysql://user@host:3306/<database>",
                    );
                }
            }
            StoreConfig::Sqlite(s) => {
                scheme(ctx, &s.url, "url", &["sqlite"]);
            }
            StoreConfig::Influx(f) => {
                scheme(ctx, &f.url, "url", &["http", "https"]);
            }
            StoreConfig::Parquet(p) => {
                if let Some(upload) = &p.upload {
                    if scheme(ctx, &upload.url, "upload", &["webhdfs", "swebhdfs"])
                        && upload.url.url.host_str().is_none_or(str::is_empty)
                    {
                        ctx.at(
                            &at("upload"),
                            "name the namenode: webhdfs://namenode:9870/path",
                        );
                    }
                    if upload.retries == Some(0) {
                        ctx.at(&at("upload_retries"), "must be at least 1");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr3t-token".into()),
            "HOST" => Some("127.0.0.1".into()),
            _ => None,
        }
    }

    const DESIGN_EXAMPLE: &str = r#"
state_dir = "millstream-data/state"        # spool, checkpoints

[source]
url = "mqtt://127.0.0.1:1883"
client_id = "millstream"
poll = { interval = "1s", items = ["0103502202"] }

[windows]
tumbling = ["1s", "10s", "1m"]
sliding = [{ size = "1m", every = "10s" }]
allowed_lateness = "2s"

[http]
listen = "127.0.0.1:8080"

[[sinks]]
name = "mysql"
kind = "mysql"
url = "mysql://root@${HOST}:3306/mqtt_data"
streams = ["samples", "windows"]

[[sinks]]
name = "edge"
kind = "influx"
url = "http://127.0.0.1:8086"
database = "class2down"

[[sinks]]
name = "cloud"
kind = "influx"
url = "${INFLUX_CLOUD_URL:-https://cloud.example.com}"
org = "XJTU"
bucket = "class2down"
token = "${TOKEN}"
streams = ["windows"]

[[sinks]]
name = "lake"
kind = "parquet"
dir = "millstream-data/lake"
"#;

    #[test]
    fn loads_the_design_example() {
        let c = load_str(DESIGN_EXAMPLE, "x.toml", env).unwrap();
        assert_eq!(c.source.url.port, 1883);
        assert_eq!(c.source.poll.as_ref().unwrap().interval.as_millis(), 1000);
        assert_eq!(c.windows.tumbling.len(), 3);
        assert_eq!(c.windows.sliding[0].every.as_millis(), 10_000);
        assert_eq!(c.sinks.len(), 4);
        let StoreConfig::Mysql(mysql) = &c.sinks[0].store else {
            panic!("{:?}", c.sinks[0])
        };
        assert_eq!(mysql.url.as_str(), "mysql://root@127.0.0.1:3306/mqtt_data");
        let StoreConfig::Influx(cloud) = &c.sinks[2].store else {
            panic!("{:?}", c.sinks[2])
        };
        let crate::config::InfluxApi::V2 { token, .. } = &cloud.api else {
            panic!("{cloud:?}")
        };
        assert_eq!(token.expose(), "s3cr3t-token");
        assert_eq!(cloud.url.as_str(), "https://cloud.example.com");
        assert_eq!(
            c.sinks[3].common.streams,
            vec![StreamKind::Samples, StreamKind::Windows]
        );
        assert!(!format!("{c:?}").contains("s3cr3t"), "secrets never print");
    }

    #[test]
    fn reports_every_problem_with_line_and_key() {
        let text = r#"
[source]
url = "mqtt://127.0.0.1:1883"
colour = "blue"

[windows]
tumbling = ["10s", "5x"]

[[sinks]]
name = "cloud"
kind = "influx"
url = "http://x:8086"
org = "o"
bucket = "b"
token = "${MISSING_TOKEN}"

[[sinks]]
name = "lake"
kind = "parquet"
"#;
        let errors = load_str(text, "bad.toml", env).unwrap_err().0;
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{lines:#?}");
        assert_eq!(errors[0].line, Some(4), "{lines:#?}");
        assert_eq!(
            errors[0].key.as_deref(),
            Some("source.colour"),
            "{lines:#?}"
        );
        assert!(errors[0].message.contains("unknown field"), "{lines:#?}");
        assert_eq!(errors[1].line, Some(7), "{lines:#?}");
        assert!(
            errors[1]
                .key
                .as_deref()
                .unwrap()
                .starts_with("windows.tumbling"),
            "{lines:#?}"
        );
        assert!(
            errors[1].message.contains("bad duration \"5x\""),
            "{lines:#?}"
        );
        assert_eq!(errors[2].line, Some(15), "{lines:#?}");
        assert_eq!(
            errors[2].key.as_deref(),
            Some("sinks[0].token"),
            "{lines:#?}"
        );
        assert!(
            errors[2].message.contains("MISSING_TOKEN is not set"),
            "{lines:#?}"
        );
        assert!(lines[3].contains("needs `dir`"), "{lines:#?}");
        assert!(
            lines[0].starts_with("bad.toml:4: source.colour: "),
            "{lines:#?}"
        );
    }

    #[test]
    fn reports_several_problems_in_one_section() {
        let text = "[source]\nurl = \"mqtt://h\"\ncolour = 1\nkeep_alive = \"soon\"\nflavour = 2\n\n[windows]\ntumbling = [\"1s\", \"x\", \"2s\", \"y\"]\n";
        let errors = load_str(text, "s.toml", env).unwrap_err().0;
        let got: Vec<(Option<usize>, &str)> = errors
            .iter()
            .map(|e| (e.line, e.key.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(3), "source.colour"),
                (Some(4), "source.keep_alive"),
                (Some(5), "source.flavour"),
                (Some(8), "windows.tumbling[1]"),
                (Some(8), "windows.tumbling[3]"),
            ],
            "{errors:#?}"
        );
        // A bad required key is reported once, not again as missing.
        let errors = load_str("[source]\nurl = \"http://x\"\n", "s.toml", env)
            .unwrap_err()
            .0;
        assert_eq!(errors.len(), 1, "{errors:#?}");
    }

    #[test]
    fn syntax_errors_have_lines() {
        let errors = load_str("[source]\nurl = \"mqtt://x\"\nbroken = \n", "s.toml", env)
            .unwrap_err()
            .0;
        assert_eq!(errors[0].line, Some(3), "{errors:?}");
    }

    #[test]
    fn cross_key_checks() {
        let text = r#"
[source]
url = "mqtt://u:hunter2@h"
max_payload = "512MiB"
tls = { ca = "ca.pem" }
poll = { interval = "1s", items = [] }

[windows]
sliding = [{ size = "10s", every = "1m" }]

[[sinks]]
name = "a b"
kind = "mysql"
url = "mysql://root@h:3306"
dir = "x"
"#;
        let errors = load_str(text, "c.toml", env).unwrap_err();
        let text = errors.to_string();
        for needle in [
            "c.toml:4: source.max_payload",
            "c.toml:5: source.tls: TLS settings given but source.url is mqtt://",
            "c.toml:6: source.poll.items",
            "c.toml:9: windows.sliding[0]: every (1m) is longer than size (10s)",
            "c.toml:12: sinks[0].name",
            "c.toml:14: sinks[0].url: name the database",
            "c.toml:15: sinks[0].dir: not used by kind \"mysql\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn each_sink_kind_takes_its_own_keys_and_says_which_it_lacks() {
        let text = r#"
[source]
url = "mqtt://127.0.0.1:1883"

[[sinks]]
name = "db"
kind = "sqlite"
url = "sqlite://x.db"
password = "p"

[[sinks]]
name = "edge"
kind = "influx"
url = "http://127.0.0.1:8086"
database = "d"
org = "o"

[[sinks]]
name = "cloud"
kind = "influx"
url = "ftp://127.0.0.1"
org = "o"

[[sinks]]
name = "v2"
kind = "influx"
url = "https://127.0.0.1"
org = "o"
bucket = "b"
token = "t"
username = "u"

[[sinks]]
name = "lake"
kind = "parquet"
dir = "lake"
username = "hdfs"
colour = "red"

[[sinks]]
name = "sql"
kind = "mysql"

[[sinks]]
name = "odd"
kind = "oracle"
"#;
        let errors = load_str(text, "k.toml", env).unwrap_err().to_string();
        for needle in [
            "k.toml:9: sinks[0].password: not used by kind \"sqlite\"",
            "sinks[1]: give either `database` (InfluxDB 1.x) or `org`, `bucket` and `token` (2.x/3.x/Cloud), not both",
            "sinks[2]: InfluxDB 2.x needs `org`, `bucket` and `token`",
            "sinks[3]: `username` and `password` are InfluxDB 1.x's",
            "k.toml:38: sinks[4].colour: unknown key `colour` (kind \"parquet\" takes dir,",
            "sinks[4].username: only with `upload`",
            "sinks[5]: kind \"mysql\" needs `url`",
            "k.toml:46: sinks[6].kind: unknown variant `oracle`",
        ] {
            assert!(errors.contains(needle), "missing {needle:?} in\n{errors}");
        }
        // A URL whose scheme is wrong is reported when the API is known.
        let text = "[source]\nurl = \"mqtt://h\"\n[[sinks]]\nname = \"e\"\nkind = \"influx\"\nurl = \"ftp://h\"\ndatabase = \"d\"\n";
        let errors = load_str(text, "u.toml", env).unwrap_err().to_string();
        assert!(
            errors.contains("u.toml:6: sinks[0].url: scheme \"ftp\" is not http or https"),
            "{errors}"
        );
    }

    #[test]
    fn missing_source_and_unknown_section() {
        let errors = load_str("[sauce]\nurl = 1\n", "m.toml", env)
            .unwrap_err()
            .to_string();
        assert!(errors.contains("m.toml:1: sauce: unknown key"), "{errors}");
        assert!(errors.contains("missing [source]"), "{errors}");
    }
}
