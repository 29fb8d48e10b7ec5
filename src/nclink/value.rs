//! Turning one JSON value of an NC-Link payload into a sample value (DESIGN.md §1): numbers to
//! `value`; strings and booleans to `text`; arrays and objects JSON-encoded to `text`; `null` to
//! nothing.
//!
//! Values arrive as `&RawValue` so the hot path (numbers) parses straight from the payload bytes
//! without building a `serde_json::Value` tree.

use serde_json::value::RawValue;

use super::error::DecodeError;

/// Deepest nesting of arrays accepted inside a Sample row before it is refused as `wrong_shape`.
pub const MAX_ROW_DEPTH: usize = 8;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Number(f64),
    Text(Box<str>),
    /// JSON `null`: no sample.
    Nothing,
}

/// Converts one JSON value. Arrays and objects become their compact JSON text.
pub fn scalar(raw: &RawValue) -> Result<Scalar, DecodeError> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'"') => {
            let s: String = serde_json::from_str(text).map_err(|e| DecodeError::from_json(&e))?;
            Ok(Scalar::Text(s.into_boxed_str()))
        }
        Some(b't') => Ok(Scalar::Text("true".into())),
        Some(b'f') => Ok(Scalar::Text("false".into())),
        Some(b'n') => Ok(Scalar::Nothing),
        Some(b'[' | b'{') => Ok(Scalar::Text(compact_json(text)?.into_boxed_str())),
        Some(_) => number(text),
        None => Err(DecodeError::wrong_shape("empty value")),
    }
}

fn number(text: &str) -> Result<Scalar, DecodeError> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Scalar::Number(v)),
        // JSON allows numbers beyond f64's range (1e400); keep them, as text, rather than
        // store an infinity no database or window can use.
        Ok(_) => Ok(Scalar::Text(text.into())),
        Err(_) => Err(DecodeError::wrong_shape(format!(
            "not a JSON number: {text}"
        ))),
    }
}

/// Re-encodes JSON compactly, so the stored text does not depend on the sender's whitespace.
fn compact_json(text: &str) -> Result<String, DecodeError> {
    if !text.contains([' ', '\n', '\t', '\r']) {
        return Ok(text.to_string());
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DecodeError::from_json(&e))?;
    Ok(value.to_string())
}

/// Appends the values of a Sample row to `out`, flattening nested arrays (`[[1,2],[3]]` gives
/// 1, 2, 3); objects inside a row are kept whole as JSON text.
pub fn flatten_row(raw: &RawValue, out: &mut Vec<Scalar>) -> Result<(), DecodeError> {
    flatten(raw, out, 0)
}

fn flatten(raw: &RawValue, out: &mut Vec<Scalar>, depth: usize) -> Result<(), DecodeError> {
    if !raw.get().trim_start().starts_with('[') {
        out.push(scalar(raw)?);
        return Ok(());
    }
    if depth >= MAX_ROW_DEPTH {
        return Err(DecodeError::wrong_shape(format!(
            "sample row nested deeper than {MAX_ROW_DEPTH} arrays"
        )));
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| DecodeError::from_json(&e))?;
    for item in items {
        flatten(item, out, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn converts_each_json_type() {
        assert_eq!(scalar(&raw("10.9526")).unwrap(), Scalar::Number(10.9526));
        assert_eq!(scalar(&raw("-3")).unwrap(), Scalar::Number(-3.0));
        assert_eq!(scalar(&raw("1e3")).unwrap(), Scalar::Number(1000.0));
        assert_eq!(
            scalar(&raw(r#""O1001""#)).unwrap(),
            Scalar::Text("O1001".into())
        );
        assert_eq!(
            scalar(&raw(r#""\u4e3b""#)).unwrap(),
            Scalar::Text("主".into())
        );
        assert_eq!(scalar(&raw("true")).unwrap(), Scalar::Text("true".into()));
        assert_eq!(scalar(&raw("null")).unwrap(), Scalar::Nothing);
        assert_eq!(scalar(&raw("[[]]")).unwrap(), Scalar::Text("[[]]".into()));
        assert_eq!(
            scalar(&raw(r#"{ "a" : [1, 2] }"#)).unwrap(),
            Scalar::Text(r#"{"a":[1,2]}"#.into())
        );
        assert_eq!(scalar(&raw("1e400")).unwrap(), Scalar::Text("1e400".into()));
    }

    #[test]
    fn flattens_rows() {
        let mut out = Vec::new();
        flatten_row(&raw(r#"[[1,2],[3],[],{"x":1},"s"]"#), &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Scalar::Number(1.0),
                Scalar::Number(2.0),
                Scalar::Number(3.0),
                Scalar::Text(r#"{"x":1}"#.into()),
                Scalar::Text("s".into())
            ]
        );
        let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
        assert_eq!(
            flatten_row(&raw(&deep), &mut out).unwrap_err().reason,
            super::super::Reason::WrongShape
        );
    }
}
