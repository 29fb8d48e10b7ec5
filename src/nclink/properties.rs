//! Property tests: the decoder (and the platform around it) never panics, whatever arrives, and
//! every refusal carries the right class of reason.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::decode::{ChannelLayout, Message, TimeRange, decode};
use super::encode::{QueryAnswer, WireValue, query_response};
use super::intern::Interner;
use super::topic::parse_topic;
use super::{DecodeError, Reason};
use crate::id::Id;
use crate::metrics::Metrics;
use crate::source::platform::{Platform, PlatformOptions};

const TOPICS: [&str; 11] = [
    "Register/Request",
    "Register/Response/D",
    "Probe/Version/D",
    "Probe/Query/Request/D",
    "Probe/Query/Response/D",
    "Query/Request/D",
    "Query/Response/D",
    "Set/Request/D",
    "Set/Response/D",
    "Sample/D/sample_channel0",
    "Sample/D/c/client",
];

/// Any JSON value, up to a few levels deep, biased towards NC-Link's keys.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9@._ -]{0,12}".prop_map(Value::String),
        Just(Value::String("1700000000000".into())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let key = prop_oneof![
            Just("@id".to_string()),
            Just("id".to_string()),
            Just("code".to_string()),
            Just("values".to_string()),
            Just("data".to_string()),
            Just("beginTime".to_string()),
            Just("paths".to_string()),
            Just("interval".to_string()),
            Just("probe".to_string()),
            Just("devices".to_string()),
            Just("deviceid".to_string()),
            Just("version".to_string()),
            Just("ids".to_string()),
            Just("results".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Decodes and, where the message carries samples, converts them with an arbitrary layout.
fn decode_fully(
    topic: &str,
    payload: &[u8],
    layout_len: usize,
    interval: i64,
) -> Result<(), DecodeError> {
    let topic = parse_topic(topic)?;
    let device: Id = Id::from("D");
    let mut out = Vec::new();
    match decode(&topic, payload)? {
        Message::QueryResponse(q) => {
            q.to_samples(&device, 1, None, &mut Interner::default(), &mut out)?;
        }
        Message::Sample(s) => {
            let ids: Vec<Id> = (0..layout_len).map(|i| Id::from(i.to_string())).collect();
            s.to_samples(
                &device,
                ChannelLayout {
                    ids: &ids,
                    sample_interval_ms: interval,
                },
                TimeRange::default(),
                &mut out,
            )?;
        }
        Message::ProbeQueryResponse(r) => {
            if let Some(tree) = r.probe {
                super::model::DeviceModel::from_tree(
                    tree,
                    &super::limits::WireLimits::default(),
                    &mut Interner::default(),
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic(topic in prop::sample::select(&TOPICS[..]), payload in prop::collection::vec(any::<u8>(), 0..512), n in 0usize..6, interval in any::<i64>()) {
        let _ = decode_fully(topic, &payload, n, interval);
    }

    #[test]
    fn random_json_never_panics_and_is_never_called_malformed(topic in prop::sample::select(&TOPICS[..]), value in json(), n in 0usize..6, interval in 1i64..10_000) {
        let payload = value.to_string();
        if let Err(e) = decode_fully(topic, payload.as_bytes(), n, interval) {
            prop_assert_ne!(e.reason, Reason::MalformedJson, "{} {}: {}", topic, payload, e);
        }
    }

    #[test]
    fn random_topics_never_panic(topic in "[A-Za-z/+#_0-9]{0,40}") {
        if let Ok(t) = parse_topic(&topic) {
            prop_assert!(t.device.is_none_or(|d| !d.is_empty() && !d.contains('/')));
        }
    }

    #[test]
    fn query_answers_round_trip(values in prop::collection::vec((any::<f64>().prop_filter("finite", |f| f.is_finite()), "[a-z]{0,8}"), 1..12)) {
        let answers: Vec<(String, QueryAnswer)> = values
            .iter()
            .enumerate()
            .map(|(i, (v, s))| {
                let answer = if i % 2 == 0 { WireValue::Number(*v) } else { WireValue::Text(s.clone()) };
                (format!("0103{i:04}"), QueryAnswer::Ok(vec![answer]))
            })
            .collect();
        let refs: Vec<(&str, QueryAnswer)> = answers.iter().map(|(id, a)| (id.as_str(), a.clone())).collect();
        let mut payload = Vec::new();
        query_response(&mut payload, Some("r"), &refs);
        let Message::QueryResponse(q) = decode(&parse_topic("Query/Response/D").unwrap(), &payload).unwrap() else {
            panic!("not a query response")
        };
        let mut out = Vec::new();
        q.to_samples(&Id::from("D"), 5, None, &mut Interner::default(), &mut out).unwrap();
        prop_assert_eq!(out.len(), values.len());
        for (i, (sample, (v, s))) in out.iter().zip(&values).enumerate() {
            if i % 2 == 0 {
                prop_assert_eq!(sample.value, Some(*v));
            } else {
                prop_assert_eq!(sample.text.as_deref(), Some(s.as_str()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The whole platform (topic parsing, decoding, model handling, pending buffer) survives any
    /// sequence of messages.
    #[test]
    fn the_platform_survives_any_message_sequence(messages in prop::collection::vec((prop::sample::select(&TOPICS[..]), prop_oneof![json().prop_map(|v| v.to_string().into_bytes()), prop::collection::vec(any::<u8>(), 0..64)]), 1..40)) {
        let metrics = Arc::new(Metrics::default());
        let mut platform = Platform::new(
            PlatformOptions {
                probe_timeout_ms: 10,
                max_payload: 4096,
                ..PlatformOptions::default()
            },
            metrics,
        );
        for (i, (topic, payload)) in messages.into_iter().enumerate() {
            platform.on_message(topic, Bytes::from(payload), i as i64 * 10);
            platform.on_tick(i as i64 * 10 + 5);
        }
    }
}

/// Runs the fast path: `None` when it declines, else the request id, stats and samples.
fn fast(
    text: &str,
) -> Option<(
    Option<&str>,
    super::decode::QueryStats,
    Vec<crate::sample::Sample>,
)> {
    let device: Id = Id::from("D");
    let mut out = Vec::new();
    let mut interner = Interner::default();
    let mut sink = super::fast::QuerySink {
        device: &device,
        ts: 1,
        model: None,
        interner: &mut interner,
        out: &mut out,
        stats: Default::default(),
        scratch: Vec::new(),
    };
    let request_id = super::fast::query_samples(text, &mut sink)?;
    let stats = sink.stats;
    Some((request_id, stats, out))
}

/// The fast path (when it takes the payload) gives exactly what the general decoder gives.
fn fast_agrees_with_serde(text: &str) -> Result<(), TestCaseError> {
    let Some((request_id, stats, fast_out)) = fast(text) else {
        return Ok(());
    };
    let slow: super::decode::QueryResponse<'_> = match super::decode::json(text.as_bytes()) {
        Ok(r) => r,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "fast path accepted what serde refuses ({e}): {text}"
            )));
        }
    };
    let mut slow_out = Vec::new();
    let slow_stats = slow
        .to_samples(
            &Id::from("D"),
            1,
            None,
            &mut Interner::default(),
            &mut slow_out,
        )
        .map_err(|e| {
            TestCaseError::fail(format!("serde path refused the samples ({e}): {text}"))
        })?;
    prop_assert_eq!(request_id, slow.request_id.as_deref(), "{}", text);
    prop_assert_eq!(stats, slow_stats, "{}", text);
    prop_assert_eq!(fast_out, slow_out, "{}", text);
    Ok(())
}

/// A plausible Query answer with random values.
fn query_answer_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        any::<i32>().prop_map(|i| i.to_string()),
        "[a-z]{0,6}".prop_map(|s| format!("\"{s}\"")),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("1e400".to_string()),
        Just("-0.0".to_string()),
    ];
    let item = (
        "[0-9]{6,10}",
        prop_oneof![Just("OK"), Just("NG"), Just("ok")],
        prop::collection::vec(value, 0..4),
    )
        .prop_map(|(id, code, vals)| {
            format!(
                r#"{{"id":"{id}","code":"{code}","values":[{}]}}"#,
                vals.join(",")
            )
        });
    ("[a-z0-9-]{0,10}", prop::collection::vec(item, 0..8))
        .prop_map(|(rid, items)| format!(r#"{{"@id":"{rid}","values":[{}]}}"#, items.join(",")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn fast_query_path_agrees_with_serde_on_answers(text in query_answer_text()) {
        prop_assert!(fast(&text).is_some() || text.contains("[]") || text.contains("1e400"));
        fast_agrees_with_serde(&text)?;
    }

    #[test]
    fn fast_query_path_agrees_with_serde_on_mutations(text in query_answer_text(), at in any::<prop::sample::Index>(), byte in prop::sample::select(&b"{}[]\",:.-+eE0123456789 \\tnul@"[..])) {
        let mut bytes = text.into_bytes();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(mutated) = String::from_utf8(bytes) {
            fast_agrees_with_serde(&mutated)?;
        }
    }

    #[test]
    fn fast_query_path_agrees_with_serde_on_any_json(value in json()) {
        fast_agrees_with_serde(&value.to_string())?;
    }
}
