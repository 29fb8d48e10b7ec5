//! MQTT broker addresses: `mqtt://[user[:password]@]host[:port]` (plain TCP, port 1883) or
//! `mqtts://…` (TLS, port 8883). `tcp://` and `ssl://` are accepted as synonyms.
//!
//! The password never shows in `Display`, so a URL can be logged as is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::secret::Secret;

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl FromStr for BrokerUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!(
                "bad broker URL {:?}: {e} (expected e.g. mqtt://127.0.0.1:1883)",
                redact(text)
            )
        })?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "bad broker URL {:?}: scheme {other:?} is not mqtt:// or mqtts://",
                    redact(text)
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(addr)) => addr.to_string(),
            Some(host) => host.to_string(),
            None => return Err(format!("bad broker URL {:?}: no host", redact(text))),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(format!(
                "bad broker URL {:?}: unexpected path or query (only scheme, user, host and port are used)",
                redact(text)
            ));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(|p| Secret::new(decode(p)));
        Ok(BrokerUrl {
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            username,
            password,
        })
    }
}

/// Hides the password of a URL-like string (`scheme://user:password@host`) for messages.
pub fn redact(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = text[authority_start..]
        .find('/')
        .map_or(text.len(), |i| authority_start + i);
    let authority = &text[authority_start..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &text[..authority_start],
            &authority[..colon],
            &text[authority_start + at..]
        ),
        _ => text.to_string(),
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.username {
            write!(f, "{user}")?;
            if self.password.is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for BrokerUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::from_str_de(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_tls_and_credentials() {
        let u: BrokerUrl = "mqtt://127.0.0.1:1883".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 1883, false));
        let u: BrokerUrl = "mqtts://broker.example.com".parse().unwrap();
        assert_eq!((u.port, u.tls), (8883, true));
        let u: BrokerUrl = "mqtt://alice:p%40ss@[::1]:1884".parse().unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.password.as_ref().unwrap().expose(), "p@ss");
        assert_eq!(u.to_string(), "mqtt://alice:***@[::1]:1884");
        assert!("http://x".parse::<BrokerUrl>().is_err());
        assert!("mqtt://x/topic".parse::<BrokerUrl>().is_err());
        assert!("127.0.0.1:1883".parse::<BrokerUrl>().is_err());
        let err = "ftp://bob:secret@x".parse::<BrokerUrl>().unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("mysql://root:pw@db:3306/x"),
            "mysql://root:***@db:3306/x"
        );
        assert_eq!(redact("mysql://root@db:3306/x"), "mysql://root@db:3306/x");
        assert_eq!(redact("http://db:8086"), "http://db:8086");
    }
}
