//! NC-Link topic names: parsing a topic into (message kind, device, channel) and building the
//! topics millstream publishes to or subscribes on (DESIGN.md §2).
//!
//! Both dialects are accepted: the lab simulator's `Kind/.../{device}` and NC-Link 3.0's form
//! with a trailing `/{clientId}` level.

use super::error::{DecodeError, Reason};
use super::limits::{check_id, shown};

/// The longest device id accepted; the SQL schemas store device ids as `VARCHAR(64)`.
pub const MAX_DEVICE_ID_BYTES: usize = super::limits::MAX_ID_BYTES;

/// Which NC-Link message a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    RegisterRequest,
    RegisterResponse,
    ProbeVersion,
    ProbeQueryRequest,
    ProbeQueryResponse,
    QueryRequest,
    QueryResponse,
    SetRequest,
    SetResponse,
    Sample,
}

impl MessageKind {
    /// True for messages a device sends to the platform.
    pub fn is_from_device(self) -> bool {
        matches!(
            self,
            MessageKind::RegisterRequest
                | MessageKind::ProbeVersion
                | MessageKind::ProbeQueryResponse
                | MessageKind::QueryResponse
                | MessageKind::SetResponse
                | MessageKind::Sample
        )
    }

    /// The topic prefix (without device id) of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            MessageKind::RegisterRequest => "Register/Request",
            MessageKind::RegisterResponse => "Register/Response",
            MessageKind::ProbeVersion => "Probe/Version",
            MessageKind::ProbeQueryRequest => "Probe/Query/Request",
            MessageKind::ProbeQueryResponse => "Probe/Query/Response",
            MessageKind::QueryRequest => "Query/Request",
            MessageKind::QueryResponse => "Query/Response",
            MessageKind::SetRequest => "Set/Request",
            MessageKind::SetResponse => "Set/Response",
            MessageKind::Sample => "Sample",
        }
    }
}

/// A parsed NC-Link topic. Borrows from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    pub kind: MessageKind,
    /// The device id; `None` for `Register/Request`, whose device id is in the payload.
    pub device: Option<&'a str>,
    /// The sample channel id (`Sample` only).
    pub channel: Option<&'a str>,
    /// The NC-Link 3.0 trailing client id, when present.
    pub client_id: Option<&'a str>,
}

/// Parses an NC-Link topic.
///
/// ```
/// use millstream::nclink::topic::{parse_topic, MessageKind};
/// let t = parse_topic("Sample/STRESS_TEST_00000/sample_channel0").unwrap();
/// assert_eq!(t.kind, MessageKind::Sample);
/// assert_eq!(t.device, Some("STRESS_TEST_00000"));
/// assert_eq!(t.channel, Some("sample_channel0"));
/// ```
pub fn parse_topic(topic: &str) -> Result<Topic<'_>, DecodeError> {
    // At most 6 levels are meaningful (`Probe/Query/Response/{id}/{client}` is 5); more is
    // unknown. A fixed array keeps this allocation-free on the hot path.
    let mut buf = [""; 7];
    let mut count = 0;
    for level in topic.split('/') {
        if count == buf.len() {
            return Err(DecodeError::new(
                Reason::UnknownTopic,
                format!("not an NC-Link topic: {}", shown(topic)),
            ));
        }
        buf[count] = level;
        count += 1;
    }
    let levels = &buf[..count];
    let unknown = || {
        DecodeError::new(
            Reason::UnknownTopic,
            format!("not an NC-Link topic: {}", shown(topic)),
        )
    };
    // (kind, number of fixed levels, whether a device level follows, whether a channel follows)
    let (kind, fixed, has_device, has_channel) = match levels {
        ["Register", "Request", ..] => (MessageKind::RegisterRequest, 2, false, false),
        ["Register", "Response", ..] => (MessageKind::RegisterResponse, 2, true, false),
        ["Probe", "Version", ..] => (MessageKind::ProbeVersion, 2, true, false),
        ["Probe", "Query", "Request", ..] => (MessageKind::ProbeQueryRequest, 3, true, false),
        ["Probe", "Query", "Response", ..] => (MessageKind::ProbeQueryResponse, 3, true, false),
        ["Query", "Request", ..] => (MessageKind::QueryRequest, 2, true, false),
        ["Query", "Response", ..] => (MessageKind::QueryResponse, 2, true, false),
        ["Set", "Request", ..] => (MessageKind::SetRequest, 2, true, false),
        ["Set", "Response", ..] => (MessageKind::SetResponse, 2, true, false),
        ["Sample", ..] => (MessageKind::Sample, 1, true, true),
        _ => return Err(unknown()),
    };
    let rest = &levels[fixed..];
    let needed = usize::from(has_device) + usize::from(has_channel);
    // Exactly the needed levels, or one more: the NC-Link 3.0 client id.
    if rest.len() != needed && rest.len() != needed + 1 {
        return Err(unknown());
    }
    if rest.iter().any(|level| level.is_empty()) {
        return Err(DecodeError::new(
            Reason::UnknownTopic,
            format!("empty level in topic {}", shown(topic)),
        ));
    }
    let device = has_device.then(|| rest[0]);
    if let Some(device) = device {
        check_device_id(device).map_err(|e| DecodeError::new(Reason::UnknownTopic, e))?;
    }
    let channel = has_channel.then(|| rest[1]);
    if let Some(channel) = channel {
        check_id("channel id", channel).map_err(|e| DecodeError::new(Reason::UnknownTopic, e))?;
    }
    let client_id = (rest.len() == needed + 1).then(|| rest[needed]);
    Ok(Topic {
        kind,
        device,
        channel,
        client_id,
    })
}

/// Checks that a device id can be stored and used in topics: [`check_id`]'s rules, and no
/// topic wildcard or separator.
pub fn check_device_id(device: &str) -> Result<(), String> {
    check_id("device id", device)?;
    if device.contains(['/', '+', '#']) {
        return Err(format!(
            "device id with a topic wildcard or separator: {}",
            shown(device)
        ));
    }
    Ok(())
}

/// The topic of a message of `kind` for `device` (not valid for `RegisterRequest`, which
/// has no device level, nor `Sample`, which needs a channel: use [`sample_topic`]).
pub fn device_topic(kind: MessageKind, device: &str) -> String {
    format!("{}/{device}", kind.prefix())
}

/// The topic of a Sample message.
pub fn sample_topic(device: &str, channel: &str) -> String {
    format!("Sample/{device}/{channel}")
}

/// The subscriptions of an NC-Link platform: every device → platform topic, in both dialects.
pub fn platform_subscriptions() -> Vec<String> {
    let mut filters = vec![
        "Register/Request".to_string(),
        "Register/Request/+".to_string(),
    ];
    for kind in [
        MessageKind::ProbeVersion,
        MessageKind::ProbeQueryResponse,
        MessageKind::QueryResponse,
        MessageKind::SetResponse,
    ] {
        filters.push(format!("{}/+", kind.prefix()));
        filters.push(format!("{}/+/+", kind.prefix()));
    }
    filters.push("Sample/+/+".to_string());
    filters.push("Sample/+/+/+".to_string());
    filters
}

/// The platform's subscriptions as one process of several (DESIGN.md §10): Sample channels and
/// Query answers through the shared subscription `$share/<group>/…`, so the broker gives each
/// message to one process of the group; registrations, probe answers and versions unshared,
/// since any process may receive any device's samples and needs its model.
pub fn shared_platform_subscriptions(group: &str) -> Vec<String> {
    let shared = [
        "Sample/".to_string(),
        format!("{}/", MessageKind::QueryResponse.prefix()),
    ];
    platform_subscriptions()
        .into_iter()
        .map(|filter| {
            if shared.iter().any(|p| filter.starts_with(p.as_str())) {
                format!("$share/{group}/{filter}")
            } else {
                filter
            }
        })
        .collect()
}

/// The subscriptions of one simulated device: every platform → device topic for it.
pub fn device_subscriptions(device: &str) -> Vec<String> {
    let mut filters = Vec::new();
    for kind in [
        MessageKind::RegisterResponse,
        MessageKind::ProbeQueryRequest,
        MessageKind::QueryRequest,
        MessageKind::SetRequest,
    ] {
        filters.push(format!("{}/{device}", kind.prefix()));
        filters.push(format!("{}/{device}/+", kind.prefix()));
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_in_both_dialects() {
        let cases = [
            ("Register/Request", MessageKind::RegisterRequest, None, None),
            (
                "Register/Response/D1",
                MessageKind::RegisterResponse,
                Some("D1"),
                None,
            ),
            (
                "Probe/Version/D1",
                MessageKind::ProbeVersion,
                Some("D1"),
                None,
            ),
            (
                "Probe/Query/Request/D1",
                MessageKind::ProbeQueryRequest,
                Some("D1"),
                None,
            ),
            (
                "Probe/Query/Response/D1",
                MessageKind::ProbeQueryResponse,
                Some("D1"),
                None,
            ),
            (
                "Query/Request/D1",
                MessageKind::QueryRequest,
                Some("D1"),
                None,
            ),
            (
                "Query/Response/D1",
                MessageKind::QueryResponse,
                Some("D1"),
                None,
            ),
            ("Set/Request/D1", MessageKind::SetRequest, Some("D1"), None),
            (
                "Set/Response/D1",
                MessageKind::SetResponse,
                Some("D1"),
                None,
            ),
            (
                "Sample/D1/sample_channel0",
                MessageKind::Sample,
                Some("D1"),
                Some("sample_channel0"),
            ),
        ];
        for (topic, kind, device, channel) in cases {
            let t = parse_topic(topic).unwrap_or_else(|e| panic!("{topic}: {e}"));
            assert_eq!(
                (t.kind, t.device, t.channel, t.client_id),
                (kind, device, channel, None),
                "{topic}"
            );
            let with_client = format!("{topic}/client-7");
            let t = parse_topic(&with_client).unwrap_or_else(|e| panic!("{with_client}: {e}"));
            assert_eq!(
                (t.kind, t.device, t.channel, t.client_id),
                (kind, device, channel, Some("client-7")),
                "{with_client}"
            );
        }
    }

    #[test]
    fn rejects_other_topics() {
        for topic in [
            "",
            "/",
            "Sample",
            "Sample/D1",
            "Sample/D1/c/x/y",
            "Query/Response",
            "Query/Response/",
            "Query/Response//x",
            "Query/Response/a/b/c",
            "Probe/Query/D1",
            "Register",
            "Register/Request/a/b",
            "foo/bar",
            "query/response/D1",
        ] {
            let err = parse_topic(topic).expect_err(topic);
            assert_eq!(err.reason, Reason::UnknownTopic, "{topic}");
        }
        let long = format!("Query/Response/{}", "x".repeat(65));
        assert_eq!(parse_topic(&long).unwrap_err().reason, Reason::UnknownTopic);
        assert!(parse_topic(&format!("Query/Response/{}", "x".repeat(64))).is_ok());
    }

    #[test]
    fn subscriptions_match_the_parser() {
        // Every platform filter, with wildcards filled in, parses as a device → platform kind.
        for filter in platform_subscriptions() {
            let topic = filter.replace('+', "X");
            let t = parse_topic(&topic).unwrap();
            assert!(t.kind.is_from_device(), "{filter}");
        }
        for filter in device_subscriptions("D1") {
            let topic = filter.replace('+', "X");
            let t = parse_topic(&topic).unwrap();
            assert!(!t.kind.is_from_device(), "{filter}");
            assert_eq!(t.device, Some("D1"));
        }
    }
}
