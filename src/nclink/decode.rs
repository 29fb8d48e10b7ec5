//! Decoding NC-Link payloads (DESIGN.md §2), both dialects, without ever panicking.
//!
//! [`decode`] turns a topic and payload into a [`Message`]. The two hot messages, `Query/Response`
//! and `Sample`, stay borrowed from the payload; turning them into [`Sample`]s is a second step
//! because it needs context the payload does not carry: the receive time (Query answers carry no
//! time) and the sample channel layout (from the device model, or from NC-Link 3.0 `paths`).
//!
//! Every failure is a [`DecodeError`] whose [`Reason`] says which class of bad input it was.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{DecodeError, Reason};
use super::intern::Interner;
use super::model::DeviceModel;
use super::topic::{MessageKind, Topic, check_device_id};
use super::value::{Scalar, flatten_row, scalar};
use crate::id::Id;
use crate::sample::Sample;

/// A decoded NC-Link message.
#[derive(Debug)]
pub enum Message<'a> {
    RegisterRequest(RegisterRequest),
    RegisterResponse(RegisterResponse),
    ProbeVersion(ProbeVersion),
    ProbeQueryRequest(ProbeQueryRequest),
    ProbeQueryResponse(ProbeQueryResponse),
    QueryRequest(QueryRequest),
    QueryResponse(QueryResponse<'a>),
    SetRequest(SetRequest),
    SetResponse(SetResponse),
    Sample(SamplePayload<'a>),
}

/// `Register/Request`: a device announces itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegisterRequest {
    #[serde(rename = "deviceid", alias = "deviceId", alias = "device_id")]
    pub device: String,
}

/// `Register/Response/{id}`: the platform's answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegisterResponse {
    pub code: String,
}

/// `Probe/Version/{id}`: the NC-Link version a device speaks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProbeVersion {
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
}

/// `Probe/Query/Request/{id}`: the platform asks for the model (payload may be empty).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ProbeQueryRequest {
    #[serde(rename = "@id", default)]
    pub request_id: Option<String>,
}

/// `Probe/Query/Response/{id}`: the device's model, or a failure code.
#[derive(Debug, Clone)]
pub struct ProbeQueryResponse {
    pub request_id: Option<String>,
    pub code: String,
    /// The model tree (`None` when the device answered with a code other than `ok`), to be
    /// built with [`DeviceModel::from_tree`] once the answer is known to be wanted.
    pub probe: Option<serde_json::Value>,
}

/// `Query/Request/{id}`: the platform asks for the current values of items.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    pub request_id: Option<String>,
    pub ids: Vec<String>,
}

/// `Query/Response/{id}`: current values, borrowed from the payload.
#[derive(Debug, Deserialize)]
pub struct QueryResponse<'a> {
    #[serde(rename = "@id", default, borrow)]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub values: Vec<QueryValue<'a>>,
}

/// One item of a `Query/Response`.
#[derive(Debug, Deserialize)]
pub struct QueryValue<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub values: Option<ValueList<'a>>,
}

/// The `values` of a Query answer item: a list (usually of one value), or a bare value.
/// Holds the first entry inline so the common single value costs no allocation.
#[derive(Debug, Default)]
pub struct ValueList<'a> {
    first: Option<Entry<'a>>,
    rest: Vec<Entry<'a>>,
}

#[derive(Debug)]
enum Entry<'a> {
    /// A list element, kept raw until converted.
    Raw(&'a RawValue),
    /// A bare value given instead of a list.
    Value(Scalar),
}

impl<'a> ValueList<'a> {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn entries(&self) -> impl Iterator<Item = &Entry<'a>> {
        self.first.iter().chain(&self.rest)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ValueList<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of values")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut list = ValueList::default();
                while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                    if list.first.is_none() {
                        list.first = Some(Entry::Raw(raw));
                    } else {
                        list.rest.push(Entry::Raw(raw));
                    }
                }
                Ok(list)
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ValueList::bare(Scalar::Number(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ValueList::bare(Scalar::Number(v as f64)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ValueList::bare(Scalar::Number(v as f64)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ValueList::bare(Scalar::Text(v.into())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ValueList::bare(Scalar::Text(v.to_string().into())))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(ValueList::bare(Scalar::Nothing))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let value = serde_json::Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(ValueList::bare(Scalar::Text(value.to_string().into())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl ValueList<'_> {
    fn bare(value: Scalar) -> Self {
        ValueList {
            first: Some(Entry::Value(value)),
            rest: Vec::new(),
        }
    }
}

/// `Set/Request/{id}`: the platform changes values on the device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SetRequest {
    #[serde(rename = "@id", default)]
    pub request_id: Option<String>,
    pub values: Vec<SetValue>,
}

/// One change of a `Set/Request`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SetValue {
    pub id: String,
    #[serde(default)]
    pub params: SetParams,
}

/// What to change (`operation` is usually `set_value`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct SetParams {
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub index: Option<i64>,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

/// `Set/Response/{id}`: one result per changed item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SetResponse {
    #[serde(rename = "@id", default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub results: Vec<SetResult>,
}

/// The outcome of one change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SetResult {
    pub id: String,
    pub code: String,
}

/// `Sample/{id}/{channel}`: rows of values of a sample channel, borrowed from the payload.
#[derive(Debug)]
pub struct SamplePayload<'a> {
    /// The channel id (from the topic).
    pub channel: String,
    /// Time of the first value of every row, ms since the epoch.
    pub begin_time: i64,
    /// One row per item of the channel, in the channel's order.
    pub rows: Vec<&'a RawValue>,
    /// NC-Link 3.0: the items of the rows, overriding the model.
    pub paths: Option<Vec<String>>,
    /// NC-Link 3.0: the sample interval in ms, overriding the model.
    pub interval: Option<i64>,
}

/// Decodes one message. `topic` must come from [`super::topic::parse_topic`].
pub fn decode<'a>(topic: &Topic<'_>, payload: &'a [u8]) -> Result<Message<'a>, DecodeError> {
    Ok(match topic.kind {
        MessageKind::RegisterRequest => {
            let m: RegisterRequest = json(payload)?;
            check_device_id(&m.device).map_err(DecodeError::wrong_shape)?;
            Message::RegisterRequest(m)
        }
        MessageKind::RegisterResponse => Message::RegisterResponse(json(payload)?),
        MessageKind::ProbeVersion => Message::ProbeVersion(json(payload)?),
        MessageKind::ProbeQueryRequest => Message::ProbeQueryRequest(if is_blank(payload) {
            ProbeQueryRequest::default()
        } else {
            json(payload)?
        }),
        MessageKind::ProbeQueryResponse => Message::ProbeQueryResponse(probe_response(payload)?),
        MessageKind::QueryRequest => Message::QueryRequest(query_request(payload)?),
        MessageKind::QueryResponse => Message::QueryResponse(json(payload)?),
        MessageKind::SetRequest => Message::SetRequest(json(payload)?),
        MessageKind::SetResponse => Message::SetResponse(json(payload)?),
        MessageKind::Sample => {
            let channel = topic.channel.ok_or_else(|| {
                DecodeError::new(Reason::UnknownTopic, "Sample topic without a channel")
            })?;
            Message::Sample(sample_payload(channel, payload)?)
        }
    })
}

pub(super) fn json<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    // Validating UTF-8 once up front (vectorised) is cheaper than serde_json checking every
    // string of the payload on its own.
    let text = std::str::from_utf8(payload).map_err(|e| {
        DecodeError::new(Reason::MalformedJson, format!("payload is not UTF-8: {e}"))
    })?;
    serde_json::from_str(text).map_err(|e| {
        // serde_json reports some shape problems (e.g. an array where a struct was expected,
        // with extra elements) as syntax errors; valid JSON is never `malformed_json`.
        if DecodeError::from_json(&e).reason == Reason::MalformedJson
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
        {
            DecodeError::wrong_shape(e.to_string())
        } else {
            DecodeError::from_json(&e)
        }
    })
}

fn is_blank(payload: &[u8]) -> bool {
    payload.iter().all(u8::is_ascii_whitespace)
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, found {other}"
        ))),
    }
}

fn probe_response(payload: &[u8]) -> Result<ProbeQueryResponse, DecodeError> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(rename = "@id", default)]
        request_id: Option<String>,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        probe: Option<serde_json::Value>,
    }
    let wire: Wire = json(payload)?;
    let code = wire.code.unwrap_or_else(|| "ok".to_string());
    if !code.eq_ignore_ascii_case("ok") {
        return Ok(ProbeQueryResponse {
            request_id: wire.request_id,
            code,
            probe: None,
        });
    }
    let tree = match wire.probe {
        // Some devices send the model as a JSON string.
        Some(serde_json::Value::String(s)) => serde_json::from_str(&s)
            .map_err(|e| DecodeError::wrong_shape(format!("probe string is not JSON: {e}")))?,
        Some(tree) => tree,
        None => {
            return Err(DecodeError::wrong_shape(
                "probe response with code ok but no `probe`",
            ));
        }
    };
    if !tree.is_object() {
        return Err(DecodeError::wrong_shape("probe model is not a JSON object"));
    }
    Ok(ProbeQueryResponse {
        request_id: wire.request_id,
        code,
        probe: Some(tree),
    })
}

fn query_request(payload: &[u8]) -> Result<QueryRequest, DecodeError> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(rename = "@id", default)]
        request_id: Option<String>,
        ids: Vec<IdEntry>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IdEntry {
        Object { id: String },
        Bare(String),
    }
    let wire: Wire = json(payload)?;
    Ok(QueryRequest {
        request_id: wire.request_id,
        ids: wire
            .ids
            .into_iter()
            .map(|e| match e {
                IdEntry::Object { id } | IdEntry::Bare(id) => id,
            })
            .collect(),
    })
}

fn sample_payload<'a>(channel: &str, payload: &'a [u8]) -> Result<SamplePayload<'a>, DecodeError> {
    #[derive(Deserialize)]
    struct Wire<'a> {
        #[serde(rename = "beginTime", borrow)]
        begin_time: &'a RawValue,
        #[serde(borrow)]
        data: Vec<&'a RawValue>,
        #[serde(default)]
        paths: Option<Vec<PathEntry>>,
        #[serde(default)]
        interval: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum PathEntry {
        Bare(String),
        Object { id: String },
    }
    #[derive(Deserialize)]
    struct Row<'a> {
        #[serde(borrow)]
        data: &'a RawValue,
    }
    let wire: Wire<'a> = json(payload)?;
    let begin_time = integer(wire.begin_time).ok_or_else(|| {
        DecodeError::wrong_shape(format!(
            "beginTime is not ms since the epoch: {}",
            wire.begin_time
        ))
    })?;
    let interval = match wire.interval {
        None => None,
        Some(raw) => Some(integer(raw).filter(|&i| i > 0).ok_or_else(|| {
            DecodeError::wrong_shape(format!("interval is not a positive number of ms: {raw}"))
        })?),
    };
    // Rows are `{"data":[...]}` objects (the lab's form) or bare arrays.
    let rows = wire
        .data
        .into_iter()
        .map(|row| {
            if row.get().trim_start().starts_with('{') {
                serde_json::from_str::<Row<'a>>(row.get())
                    .map(|r| r.data)
                    .map_err(|e| DecodeError::from_json(&e))
            } else {
                Ok(row)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let paths = wire.paths.map(|paths| {
        paths
            .into_iter()
            .map(|p| match p {
                PathEntry::Bare(id) | PathEntry::Object { id } => id,
            })
            .collect()
    });
    Ok(SamplePayload {
        channel: channel.to_string(),
        begin_time,
        rows,
        paths,
        interval,
    })
}

/// An integer given as a JSON number or a string of digits.
fn integer(raw: &RawValue) -> Option<i64> {
    let text = raw.get().trim();
    let digits = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.trim(),
        None => text,
    };
    if let Ok(v) = digits.parse::<i64>() {
        return Some(v);
    }
    // `1.7e12` or `1700000000000.0`: accept when integral and in range.
    digits
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
        .map(|f| f as i64)
}

/// What [`QueryResponse::to_samples`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Samples produced.
    pub samples: usize,
    /// Items answered with a code other than `OK` (e.g. `NG`), skipped.
    pub not_ok: usize,
}

impl QueryResponse<'_> {
    /// Appends one sample per answered value, stamped `ts` (the receive time: Query answers
    /// carry none). Items answered `NG` are skipped; several values give indexed items
    /// `"{id}[{i}]"`.
    pub fn to_samples(
        &self,
        device: &Id,
        ts: i64,
        model: Option<&DeviceModel>,
        interner: &mut Interner,
        out: &mut Vec<Sample>,
    ) -> Result<QueryStats, DecodeError> {
        let mut stats = QueryStats::default();
        for value in &self.values {
            if let Some(code) = &value.code
                && !code.eq_ignore_ascii_case("ok")
            {
                stats.not_ok += 1;
                continue;
            }
            let Some(list) = &value.values else { continue };
            if list.len() > interner.indexed_values() {
                return Err(too_many_values(&value.id, list.len(), interner));
            }
            let indexed = list.len() > 1;
            for (i, entry) in list.entries().enumerate() {
                let scalar = match entry {
                    Entry::Raw(raw) => scalar(raw)?,
                    Entry::Value(Scalar::Number(v)) => Scalar::Number(*v),
                    Entry::Value(v) => v.clone(),
                };
                let item = if indexed {
                    interner.intern(&format!("{}[{i}]", value.id))?
                } else {
                    match model.and_then(|m| m.item_id(&value.id)) {
                        Some(shared) => shared.clone(),
                        None => interner.intern(&value.id)?,
                    }
                };
                if push(out, device, item, ts, scalar) {
                    stats.samples += 1;
                }
            }
        }
        Ok(stats)
    }
}

/// An item answered with more values than become indexed items.
pub(super) fn too_many_values(id: &str, n: usize, interner: &Interner) -> DecodeError {
    DecodeError::wrong_shape(format!(
        "item {} answered with {n} values, more than {} (source.limits.indexed_values)",
        super::limits::shown(id),
        interner.indexed_values()
    ))
}

pub(super) fn push(out: &mut Vec<Sample>, device: &Id, item: Id, ts: i64, value: Scalar) -> bool {
    let sample = match value {
        Scalar::Number(v) => Sample::number(device.clone(), item, ts, v),
        Scalar::Text(t) => Sample::text(device.clone(), item, ts, t),
        Scalar::Nothing => return false,
    };
    out.push(sample);
    true
}

/// What [`query_response_samples`] decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOutcome {
    /// The `@id` of the answer (the request it answers).
    pub request_id: Option<String>,
    pub stats: QueryStats,
}

/// Decodes a `Query/Response` payload straight into samples stamped `ts` (see
/// [`QueryResponse::to_samples`]): the hot path of polling. Plain payloads take a single-pass
/// parser; anything else goes through [`decode`], with the same result.
pub fn query_response_samples(
    payload: &[u8],
    device: &Id,
    ts: i64,
    model: Option<&DeviceModel>,
    interner: &mut Interner,
    out: &mut Vec<Sample>,
) -> Result<QueryOutcome, DecodeError> {
    let start = out.len();
    if let Ok(text) = std::str::from_utf8(payload) {
        let mut sink = super::fast::QuerySink {
            device,
            ts,
            model,
            interner,
            out,
            stats: QueryStats::default(),
            scratch: Vec::new(),
        };
        if let Some(request_id) = super::fast::query_samples(text, &mut sink) {
            return Ok(QueryOutcome {
                request_id: request_id.map(str::to_string),
                stats: sink.stats,
            });
        }
        out.truncate(start);
    }
    let response: QueryResponse<'_> = json(payload)?;
    let stats = response.to_samples(device, ts, model, interner, out)?;
    Ok(QueryOutcome {
        request_id: response.request_id.map(|id| id.into_owned()),
        stats,
    })
}

/// The items and timing that give meaning to the rows of a Sample message.
#[derive(Debug, Clone, Copy)]
pub struct ChannelLayout<'m> {
    pub ids: &'m [Id],
    pub sample_interval_ms: i64,
}

/// Event times accepted, `[earliest, latest)` in ms since the epoch (`source.limits`), and,
/// for a message, how far ahead of its receive time its values may lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub earliest: i64,
    pub latest: i64,
    /// (receive time, most ms ahead of it).
    pub ahead: Option<(i64, i64)>,
}

impl Default for TimeRange {
    fn default() -> Self {
        let limits = super::limits::WireLimits::default();
        TimeRange::of(&limits)
    }
}

impl TimeRange {
    pub fn of(limits: &super::limits::WireLimits) -> TimeRange {
        TimeRange {
            earliest: limits.earliest_ms,
            latest: limits.latest_ms,
            ahead: None,
        }
    }

    /// The times a message received at `received_at` may carry: also no further ahead of that
    /// than `source.limits.ahead` (a clock or an interval that is wrong would otherwise push
    /// its keys' watermarks into the future, and everything they send after would be late).
    pub fn for_message(limits: &super::limits::WireLimits, received_at: i64) -> TimeRange {
        TimeRange {
            ahead: Some((received_at, limits.ahead_ms)),
            ..TimeRange::of(limits)
        }
    }

    fn ahead_of(&self, ts: i64) -> Option<(i64, i64)> {
        self.ahead
            .filter(|(received, ahead)| ts > received.saturating_add(*ahead))
    }

    fn contains(&self, ts: i64) -> bool {
        (self.earliest..self.latest).contains(&ts) && self.ahead_of(ts).is_none()
    }

    /// Why `ts` (value `k` of `item`, from `begin` every `interval` ms; `None`: it overflows)
    /// is refused.
    fn refusal(&self, ts: Option<i64>, k: usize, item: &str, begin: i64, interval: i64) -> String {
        let at = format!(
            "value {k} of {} (beginTime {begin} + {k} × {interval} ms)",
            super::limits::shown(item)
        );
        match ts.and_then(|ts| {
            (self.earliest..self.latest)
                .contains(&ts)
                .then(|| self.ahead_of(ts).map(|a| (ts, a)))
                .flatten()
        }) {
            Some((ts, (received, ahead))) => format!(
                "{at} is {} s ahead of its receive time (source.limits.ahead: {} s): the \
                 device's clock, or the interval of its values, is wrong",
                (ts - received) / 1_000,
                ahead / 1_000
            ),
            None => format!(
                "{at} is outside source.limits [{}, {})",
                self.earliest, self.latest
            ),
        }
    }
}

impl SamplePayload<'_> {
    /// Appends the samples of every row: value k of row i is item `ids[i]` at
    /// `beginTime + k * interval`. Returns how many samples were added. The whole message is
    /// refused (nothing appended) if any row is malformed or the rows do not match the layout.
    pub fn to_samples(
        &self,
        device: &Id,
        layout: ChannelLayout<'_>,
        times: TimeRange,
        out: &mut Vec<Sample>,
    ) -> Result<usize, DecodeError> {
        if self.rows.len() != layout.ids.len() {
            return Err(DecodeError::wrong_shape(format!(
                "channel {} declares {} items but the message has {} rows",
                self.channel,
                layout.ids.len(),
                self.rows.len()
            )));
        }
        let start = out.len();
        let mut scalars = Vec::new();
        for (row, item) in self.rows.iter().zip(layout.ids) {
            scalars.clear();
            if let Err(e) = flatten_row(row, &mut scalars) {
                out.truncate(start);
                return Err(e);
            }
            for (k, s) in scalars.drain(..).enumerate() {
                let ts = (k as i64)
                    .checked_mul(layout.sample_interval_ms)
                    .and_then(|offset| self.begin_time.checked_add(offset));
                let Some(ts) = ts.filter(|ts| times.contains(*ts)) else {
                    out.truncate(start);
                    let why =
                        times.refusal(ts, k, item, self.begin_time, layout.sample_interval_ms);
                    return Err(DecodeError::new(Reason::BadTime, why));
                };
                push(out, device, item.clone(), ts, s);
            }
        }
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nclink::topic::parse_topic;

    fn dec<'a>(topic: &str, payload: &'a str) -> Result<Message<'a>, DecodeError> {
        decode(&parse_topic(topic).unwrap(), payload.as_bytes())
    }

    fn dev() -> Id {
        Id::from("STRESS_TEST_00000")
    }

    #[test]
    fn design_register_and_version() {
        match dec("Register/Request", r#"{"deviceid":"STRESS_TEST_00000"}"#).unwrap() {
            Message::RegisterRequest(r) => assert_eq!(r.device, "STRESS_TEST_00000"),
            other => panic!("{other:?}"),
        }
        match dec("Register/Response/D", r#"{"code":"OK"}"#).unwrap() {
            Message::RegisterResponse(r) => assert_eq!(r.code, "OK"),
            other => panic!("{other:?}"),
        }
        match dec("Probe/Version/D", r#"{"version":"1.1"}"#).unwrap() {
            Message::ProbeVersion(v) => assert_eq!(v.version, "1.1"),
            other => panic!("{other:?}"),
        }
        match dec("Probe/Version/D/c1", r#"{"version":3.0}"#).unwrap() {
            Message::ProbeVersion(v) => assert_eq!(v.version, "3.0"),
            other => panic!("{other:?}"),
        }
        let err = dec("Register/Request", r#"{"deviceid":"a/b"}"#).unwrap_err();
        assert_eq!(err.reason, Reason::WrongShape);
    }

    #[test]
    fn design_probe_request_and_response() {
        match dec("Probe/Query/Request/D", "").unwrap() {
            Message::ProbeQueryRequest(r) => assert_eq!(r.request_id, None),
            other => panic!("{other:?}"),
        }
        match dec("Probe/Query/Request/D", r#"{"@id":"r1"}"#).unwrap() {
            Message::ProbeQueryRequest(r) => assert_eq!(r.request_id.as_deref(), Some("r1")),
            other => panic!("{other:?}"),
        }
        let model = include_str!("../../data/nc-link/lab-model.json");
        let payload = format!(r#"{{"code":"ok","probe":{model}}}"#);
        match dec("Probe/Query/Response/D", &payload).unwrap() {
            Message::ProbeQueryResponse(r) => {
                let m = DeviceModel::from_own_tree(r.probe.unwrap()).unwrap();
                assert_eq!(m.item("0103502202").unwrap().name, "实际速度");
                assert_eq!(m.channel("sample_channel0").unwrap().ids.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        // The model as a JSON string, as some devices send it.
        let payload = serde_json::json!({"code":"ok","probe": model}).to_string();
        match dec("Probe/Query/Response/D", &payload).unwrap() {
            Message::ProbeQueryResponse(r) => assert!(r.probe.is_some()),
            other => panic!("{other:?}"),
        }
        match dec("Probe/Query/Response/D", r#"{"code":"NG"}"#).unwrap() {
            Message::ProbeQueryResponse(r) => assert!(r.probe.is_none() && r.code == "NG"),
            other => panic!("{other:?}"),
        }
        let err = dec("Probe/Query/Response/D", r#"{"code":"ok","probe":[1]}"#).unwrap_err();
        assert_eq!(err.reason, Reason::WrongShape);
    }

    #[test]
    fn design_query_request_and_response() {
        match dec(
            "Query/Request/D",
            r#"{"@id":"r1","ids":[{"id":"0103502202"},"010302"]}"#,
        )
        .unwrap()
        {
            Message::QueryRequest(r) => {
                assert_eq!(r.request_id.as_deref(), Some("r1"));
                assert_eq!(r.ids, ["0103502202", "010302"]);
            }
            other => panic!("{other:?}"),
        }
        let payload =
            r#"{"@id":"r1","values":[{"id":"0103502202","code":"OK","values":[10.9526]}]}"#;
        let Message::QueryResponse(q) = dec("Query/Response/D", payload).unwrap() else {
            panic!()
        };
        assert_eq!(q.request_id.as_deref(), Some("r1"));
        let mut out = Vec::new();
        let stats = q
            .to_samples(&dev(), 1234, None, &mut Interner::default(), &mut out)
            .unwrap();
        assert_eq!(
            stats,
            QueryStats {
                samples: 1,
                not_ok: 0
            }
        );
        assert_eq!(
            out,
            vec![Sample::number(dev(), "0103502202".into(), 1234, 10.9526)]
        );
    }

    #[test]
    fn query_response_value_kinds() {
        let payload = r#"{"@id":"r2","values":[
            {"id":"010302","code":"OK","values":["running"]},
            {"id":"01035412","code":"OK","values":[[[]]]},
            {"id":"01035430","code":"OK","values":[1,2.5,"x"]},
            {"id":"0103502201","code":"NG"},
            {"id":"0103502101","code":"NG","values":[1]},
            {"id":"010305","code":"OK","values":[]},
            {"id":"010306","code":"ok","values":100},
            {"id":"010307","values":[null]},
            {"id":"0103502001","code":"OK","values":[true]}]}"#;
        let Message::QueryResponse(q) = dec("Query/Response/D/c9", payload).unwrap() else {
            panic!()
        };
        let mut out = Vec::new();
        let stats = q
            .to_samples(&dev(), 7, None, &mut Interner::default(), &mut out)
            .unwrap();
        assert_eq!(
            stats,
            QueryStats {
                samples: 7,
                not_ok: 2
            }
        );
        let got: Vec<(String, Option<f64>, Option<String>)> = out
            .iter()
            .map(|s| {
                (
                    s.item.to_string(),
                    s.value,
                    s.text.as_ref().map(|t| t.to_string()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("010302".into(), None, Some("running".into())),
                ("01035412".into(), None, Some("[[]]".into())),
                ("01035430[0]".into(), Some(1.0), None),
                ("01035430[1]".into(), Some(2.5), None),
                ("01035430[2]".into(), None, Some("x".into())),
                ("010306".into(), Some(100.0), None),
                ("0103502001".into(), None, Some("true".into())),
            ]
        );
        assert!(out.iter().all(|s| s.ts == 7));
    }

    #[test]
    fn design_set_request_and_response() {
        let payload = r#"{"@id":"s1","values":[{"id":"01035430","params":{"operation":"set_value","index":3,"value":42}}]}"#;
        match dec("Set/Request/D", payload).unwrap() {
            Message::SetRequest(r) => {
                assert_eq!(r.request_id.as_deref(), Some("s1"));
                assert_eq!(r.values[0].params.index, Some(3));
                assert_eq!(r.values[0].params.value, Some(serde_json::json!(42)));
            }
            other => panic!("{other:?}"),
        }
        match dec(
            "Set/Response/D",
            r#"{"@id":"s1","results":[{"id":"01035430","code":"OK"}]}"#,
        )
        .unwrap()
        {
            Message::SetResponse(r) => assert_eq!(
                r.results,
                vec![SetResult {
                    id: "01035430".into(),
                    code: "OK".into()
                }]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn design_sample_with_model_layout() {
        let payload = r#"{"id":"sample_channel0","beginTime":"1700000000000","data":[{"data":[1,1]},{"data":[]},{"data":["O1001","O1002"]}]}"#;
        let Message::Sample(s) = dec("Sample/D/sample_channel0", payload).unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.begin_time, s.rows.len(), s.channel.as_str()),
            (1_700_000_000_000, 3, "sample_channel0")
        );
        let ids: Vec<Id> = ["010302", "010307", "01035409"]
            .into_iter()
            .map(Id::from)
            .collect();
        let mut out = Vec::new();
        let n = s
            .to_samples(
                &dev(),
                ChannelLayout {
                    ids: &ids,
                    sample_interval_ms: 2000,
                },
                TimeRange::default(),
                &mut out,
            )
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            out[0],
            Sample::number(dev(), "010302".into(), 1_700_000_000_000, 1.0)
        );
        assert_eq!(
            out[1],
            Sample::number(dev(), "010302".into(), 1_700_000_002_000, 1.0)
        );
        assert_eq!(
            out[2],
            Sample::text(dev(), "01035409".into(), 1_700_000_000_000, "O1001")
        );
        assert_eq!(out[3].ts, 1_700_000_002_000);
        // Row count must match the channel.
        let err = s
            .to_samples(
                &dev(),
                ChannelLayout {
                    ids: &ids[..2],
                    sample_interval_ms: 10,
                },
                TimeRange::default(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.reason, Reason::WrongShape);
        assert_eq!(out.len(), 4, "nothing appended on error");
    }

    #[test]
    fn sample_nc_link_3_paths_and_numeric_begin_time() {
        let payload = r#"{"id":"ch1","beginTime":1700000000000,"interval":10,"paths":["a",{"id":"b"}],"data":[[[1,2],[3]],[4]]}"#;
        let Message::Sample(s) = dec("Sample/D/ch1/client", payload).unwrap() else {
            panic!()
        };
        assert_eq!(
            s.paths.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(s.interval, Some(10));
        let ids: Vec<Id> = vec!["a".into(), "b".into()];
        let mut out = Vec::new();
        s.to_samples(
            &dev(),
            ChannelLayout {
                ids: &ids,
                sample_interval_ms: 10,
            },
            TimeRange::default(),
            &mut out,
        )
        .unwrap();
        let got: Vec<(&str, i64, f64)> = out
            .iter()
            .map(|s| (&*s.item, s.ts - 1_700_000_000_000, s.value.unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![("a", 0, 1.0), ("a", 10, 2.0), ("a", 20, 3.0), ("b", 0, 4.0)]
        );
    }

    #[test]
    fn classifies_bad_payloads() {
        let cases = [
            ("Query/Response/D", "not json", Reason::MalformedJson),
            ("Query/Response/D", "{\"values\":[", Reason::MalformedJson),
            ("Query/Response/D", "", Reason::MalformedJson),
            ("Query/Response/D", "[1,2]", Reason::WrongShape),
            (
                "Query/Response/D",
                r#"{"values":[{"code":"OK"}]}"#,
                Reason::WrongShape,
            ),
            (
                "Sample/D/c",
                r#"{"beginTime":"soon","data":[]}"#,
                Reason::WrongShape,
            ),
            (
                "Sample/D/c",
                r#"{"beginTime":1,"data":[{"x":1}]}"#,
                Reason::WrongShape,
            ),
            (
                "Sample/D/c",
                r#"{"beginTime":1,"interval":-5,"data":[]}"#,
                Reason::WrongShape,
            ),
            ("Register/Request", r#"{"device":"x"}"#, Reason::WrongShape),
            ("Probe/Version/D", r#"{"version":[1]}"#, Reason::WrongShape),
        ];
        for (topic, payload, reason) in cases {
            let err = dec(topic, payload).expect_err(payload);
            assert_eq!(err.reason, reason, "{topic} {payload}: {err}");
        }
        let err = decode(
            &parse_topic("Query/Response/D").unwrap(),
            &[0xff, 0xfe, 0x00],
        )
        .unwrap_err();
        assert_eq!(err.reason, Reason::MalformedJson);
    }
}
