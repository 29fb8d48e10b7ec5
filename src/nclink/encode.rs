//! Encoding NC-Link payloads: the platform's requests (Query, Probe, Set, Register answers) and,
//! for the simulator, the device's messages (Register, Version, Probe answers, Query answers,
//! Set answers, Sample rows).
//!
//! Sample and Query answers are written by hand into a byte buffer: the simulator must produce
//! tens of thousands of values a second on one core, and building a `serde_json::Value` per
//! message would dominate that.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

/// A value as a device puts it on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum WireValue {
    Number(f64),
    Text(String),
    /// Already-encoded JSON (an array or object), written verbatim.
    Json(String),
}

/// Unique `@id`s for the platform's requests: a per-process prefix and a counter, so ids never
/// repeat across restarts of the same client id.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(client_id: &str) -> RequestIds {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        RequestIds {
            prefix: format!(
                "{client_id}-{:x}",
                (nanos as u64) ^ u64::from(std::process::id())
            ),
            next: AtomicU64::new(1),
        }
    }

    pub fn next_id(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// `Query/Request/{id}` payload.
pub fn query_request(request_id: &str, items: &[impl AsRef<str>]) -> Vec<u8> {
    let ids: Vec<_> = items.iter().map(|i| json!({ "id": i.as_ref() })).collect();
    json!({ "@id": request_id, "ids": ids })
        .to_string()
        .into_bytes()
}

/// `Probe/Query/Request/{id}` payload.
pub fn probe_request(request_id: &str) -> Vec<u8> {
    json!({ "@id": request_id }).to_string().into_bytes()
}

/// `Set/Request/{id}` payload changing one value of one item.
pub fn set_request(
    request_id: &str,
    item: &str,
    index: Option<i64>,
    value: &serde_json::Value,
) -> Vec<u8> {
    let mut params = json!({ "operation": "set_value", "value": value });
    if let Some(index) = index {
        params["index"] = json!(index);
    }
    json!({ "@id": request_id, "values": [{ "id": item, "params": params }] })
        .to_string()
        .into_bytes()
}

/// `Register/Response/{id}` payload.
pub fn register_response(code: &str) -> Vec<u8> {
    json!({ "code": code }).to_string().into_bytes()
}

/// `Register/Request` payload (device side).
pub fn register_request(device: &str) -> Vec<u8> {
    json!({ "deviceid": device }).to_string().into_bytes()
}

/// `Probe/Version/{id}` payload (device side).
pub fn probe_version(version: &str) -> Vec<u8> {
    json!({ "version": version }).to_string().into_bytes()
}

/// `Probe/Query/Response/{id}` payload (device side).
pub fn probe_response(request_id: Option<&str>, model: &serde_json::Value) -> Vec<u8> {
    let mut body = json!({ "code": "ok", "probe": model });
    if let Some(id) = request_id {
        body["@id"] = json!(id);
    }
    body.to_string().into_bytes()
}

/// `Set/Response/{id}` payload (device side): `(item, code)` per change.
pub fn set_response(request_id: Option<&str>, results: &[(String, &str)]) -> Vec<u8> {
    let results: Vec<_> = results
        .iter()
        .map(|(id, code)| json!({ "id": id, "code": code }))
        .collect();
    let mut body = json!({ "results": results });
    if let Some(id) = request_id {
        body["@id"] = json!(id);
    }
    body.to_string().into_bytes()
}

/// One answered item of a `Query/Response`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryAnswer {
    Ok(Vec<WireValue>),
    /// The device does not know the item or cannot read it.
    Ng,
}

/// `Query/Response/{id}` payload (device side).
pub fn query_response(
    out: &mut Vec<u8>,
    request_id: Option<&str>,
    answers: &[(&str, QueryAnswer)],
) {
    out.push(b'{');
    if let Some(id) = request_id {
        out.extend_from_slice(b"\"@id\":");
        write_str(out, id);
        out.push(b',');
    }
    out.extend_from_slice(b"\"values\":[");
    for (i, (item, answer)) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        write_str(out, item);
        match answer {
            QueryAnswer::Ok(values) => {
                out.extend_from_slice(b",\"code\":\"OK\",\"values\":[");
                write_values(out, values);
                out.extend_from_slice(b"]}");
            }
            QueryAnswer::Ng => out.extend_from_slice(b",\"code\":\"NG\"}"),
        }
    }
    out.extend_from_slice(b"]}");
}

/// `Sample/{id}/{channel}` payload (device side), in the lab dialect: `beginTime` as a string,
/// one `{"data":[...]}` row per channel item.
pub fn sample_message(out: &mut Vec<u8>, channel: &str, begin_time: i64, rows: &[Vec<WireValue>]) {
    out.extend_from_slice(b"{\"id\":");
    write_str(out, channel);
    let _ = write!(out, ",\"beginTime\":\"{begin_time}\",\"data\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"data\":[");
        write_values(out, row);
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

fn write_values(out: &mut Vec<u8>, values: &[WireValue]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match value {
            WireValue::Number(v) if v.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, v);
            }
            WireValue::Number(_) => out.extend_from_slice(b"null"),
            WireValue::Text(s) => write_str(out, s),
            WireValue::Json(raw) => out.extend_from_slice(raw.as_bytes()),
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes quotes, backslashes and control characters.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::nclink::decode::{ChannelLayout, Message, TimeRange, decode};
    use crate::nclink::intern::Interner;
    use crate::nclink::topic::parse_topic;

    #[test]
    fn request_ids_are_unique() {
        let ids = RequestIds::new("millstream");
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert!(a.starts_with("millstream-"));
        assert_ne!(
            RequestIds::new("millstream").next_id(),
            a,
            "a new process gets new ids"
        );
    }

    #[test]
    fn platform_requests_round_trip() {
        let payload = query_request("r1", &["0103502202", "010302"]);
        match decode(&parse_topic("Query/Request/D").unwrap(), &payload).unwrap() {
            Message::QueryRequest(q) => {
                assert_eq!(q.request_id.as_deref(), Some("r1"));
                assert_eq!(q.ids, ["0103502202", "010302"]);
            }
            other => panic!("{other:?}"),
        }
        match decode(
            &parse_topic("Probe/Query/Request/D").unwrap(),
            &probe_request("p1"),
        )
        .unwrap()
        {
            Message::ProbeQueryRequest(p) => assert_eq!(p.request_id.as_deref(), Some("p1")),
            other => panic!("{other:?}"),
        }
        let payload = set_request("s1", "01035430", Some(2), &json!(7.5));
        match decode(&parse_topic("Set/Request/D").unwrap(), &payload).unwrap() {
            Message::SetRequest(s) => {
                assert_eq!(s.values[0].id, "01035430");
                assert_eq!(s.values[0].params.operation.as_deref(), Some("set_value"));
                assert_eq!(s.values[0].params.index, Some(2));
            }
            other => panic!("{other:?}"),
        }
        match decode(
            &parse_topic("Register/Response/D").unwrap(),
            &register_response("OK"),
        )
        .unwrap()
        {
            Message::RegisterResponse(r) => assert_eq!(r.code, "OK"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn device_messages_round_trip() {
        let mut buf = Vec::new();
        let answers = [
            (
                "0103502202",
                QueryAnswer::Ok(vec![WireValue::Number(10.9526)]),
            ),
            (
                "010302",
                QueryAnswer::Ok(vec![WireValue::Text("run\"ning".into())]),
            ),
            (
                "01035412",
                QueryAnswer::Ok(vec![WireValue::Json("[[]]".into())]),
            ),
            ("nope", QueryAnswer::Ng),
        ];
        query_response(&mut buf, Some("q1"), &answers);
        let Message::QueryResponse(q) =
            decode(&parse_topic("Query/Response/D").unwrap(), &buf).unwrap()
        else {
            panic!()
        };
        let mut out = Vec::new();
        let device: Id = "D".into();
        let stats = q
            .to_samples(&device, 5, None, &mut Interner::default(), &mut out)
            .unwrap();
        assert_eq!((stats.samples, stats.not_ok), (3, 1));
        assert_eq!(out[0].value, Some(10.9526));
        assert_eq!(out[1].text.as_deref(), Some("run\"ning"));
        assert_eq!(out[2].text.as_deref(), Some("[[]]"));

        buf.clear();
        let rows = vec![
            vec![WireValue::Number(1.0), WireValue::Number(2.0)],
            vec![
                WireValue::Text("O1001".into()),
                WireValue::Text("O1001".into()),
            ],
        ];
        sample_message(&mut buf, "c0", 1_700_000_000_000, &rows);
        let Message::Sample(s) = decode(&parse_topic("Sample/D/c0").unwrap(), &buf).unwrap() else {
            panic!()
        };
        let ids: Vec<Id> = vec!["a".into(), "b".into()];
        s.to_samples(
            &device,
            ChannelLayout {
                ids: &ids,
                sample_interval_ms: 100,
            },
            TimeRange::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 7);
        assert_eq!(out[4].ts, 1_700_000_000_100);
    }
}
