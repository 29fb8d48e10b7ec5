//! A fast path for the hottest message, `Query/Response`: a single pass over the payload for the
//! plain form devices actually send (no escapes in strings, scalar values), falling back to the
//! serde path for anything else. It gives up (returns `None`) rather than guess, so its
//! behaviour is the serde path's on every input; a property test checks exactly that.

use super::decode::QueryStats;
use super::intern::Interner;
use super::model::DeviceModel;
use super::value::Scalar;
use crate::id::Id;
use crate::sample::Sample;

/// Decodes a plain `Query/Response` straight into samples (appended to `sink.out`); returns the
/// request id. `None` means "use the general decoder" (the caller discards anything appended).
pub(super) fn query_samples<'a>(
    text: &'a str,
    sink: &mut QuerySink<'_>,
) -> Option<Option<&'a str>> {
    let mut p = Parser {
        b: text.as_bytes(),
        s: text,
        i: 0,
    };
    p.ws();
    p.eat(b'{')?;
    let mut request_id = None;
    let (mut seen_id, mut seen_values) = (false, false);
    loop {
        p.ws();
        let key = p.key()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match key {
            "@id" if !seen_id => {
                seen_id = true;
                request_id = match p.peek()? {
                    b'n' => {
                        p.literal("null")?;
                        None
                    }
                    _ => Some(p.string()?),
                }
            }
            "values" if !seen_values => {
                seen_values = true;
                p.items(sink)?;
            }
            // Duplicate keys and anything else: leave to serde's rules.
            _ => return None,
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    (p.i == p.b.len() && seen_values).then_some(request_id)
}

/// Where the fast path puts what it decodes.
pub(super) struct QuerySink<'s> {
    pub device: &'s Id,
    pub ts: i64,
    pub model: Option<&'s DeviceModel>,
    pub interner: &'s mut Interner,
    pub out: &'s mut Vec<Sample>,
    pub stats: QueryStats,
    /// Values of the item being parsed.
    pub scratch: Vec<Scalar>,
}

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

struct Parser<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// An object key: the usual NC-Link keys are matched as whole tokens before falling back
    /// to scanning a string.
    fn key(&mut self) -> Option<&'a str> {
        const KEYS: [&str; 4] = ["id", "code", "values", "@id"];
        let rest = &self.b[self.i..];
        if rest.first() == Some(&b'"') {
            for key in KEYS {
                let k = key.as_bytes();
                if rest.len() > k.len() + 1 && &rest[1..=k.len()] == k && rest[k.len() + 1] == b'"'
                {
                    self.i += k.len() + 2;
                    return Some(key);
                }
            }
        }
        self.string()
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        self.i = start + len;
        self.eat(b'"')?;
        Some(&self.s[start..start + len])
    }

    /// A number exactly as JSON's grammar allows it.
    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        // Accumulate the digits while checking the grammar, for the exact fast case below.
        let mut mantissa: u64 = 0;
        let mut digits = 1u32;
        match self.next()? {
            b'0' => {}
            c @ b'1'..=b'9' => {
                mantissa = u64::from(c - b'0');
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                    digits += 1;
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let mut fraction = 0u32;
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.i -= 1;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                digits += 1;
                fraction += 1;
                self.i += 1;
            }
        }
        let mut exponent = false;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            exponent = true;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digit()?;
            self.digits();
        }
        // Clinger's fast path: an integer below 2^53 divided by an exact power of ten is
        // correctly rounded by one IEEE division, the same result as a full parse.
        if !exponent && digits <= 15 && (fraction as usize) < POW10.len() {
            let v = mantissa as f64 / POW10[fraction as usize];
            return Some(if negative { -v } else { v });
        }
        // Out-of-range numbers are kept as text by the general path.
        self.s[start..self.i]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }

    fn digit(&mut self) -> Option<()> {
        self.next().filter(u8::is_ascii_digit).map(|_| ())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// A scalar value; arrays and objects are left to the general path.
    fn scalar(&mut self) -> Option<Scalar> {
        Some(match self.peek()? {
            b'"' => Scalar::Text(self.string()?.into()),
            b't' => {
                self.literal("true")?;
                Scalar::Text("true".into())
            }
            b'f' => {
                self.literal("false")?;
                Scalar::Text("false".into())
            }
            b'n' => {
                self.literal("null")?;
                Scalar::Nothing
            }
            b'-' | b'0'..=b'9' => Scalar::Number(self.number()?),
            _ => return None,
        })
    }

    fn items(&mut self, sink: &mut QuerySink<'_>) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.item(sink)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn item(&mut self, sink: &mut QuerySink<'_>) -> Option<()> {
        self.eat(b'{')?;
        let (mut id, mut code, mut has_values) = (None, None, false);
        sink.scratch.clear();
        loop {
            self.ws();
            let key = self.key()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                "id" if id.is_none() => id = Some(self.string()?),
                "code" if code.is_none() => code = Some(self.string()?),
                "values" if !has_values => {
                    has_values = true;
                    self.values(&mut sink.scratch)?;
                }
                _ => return None,
            }
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        let id = id?;
        if code.is_some_and(|c| !c.eq_ignore_ascii_case("ok")) {
            sink.stats.not_ok += 1;
            return Some(());
        }
        if sink.scratch.len() > sink.interner.indexed_values() {
            // Refused: the full decoder reports why.
            return None;
        }
        let indexed = sink.scratch.len() > 1;
        for (i, value) in sink.scratch.drain(..).enumerate() {
            let item = if indexed {
                // Refused ids: the full decoder reports why.
                sink.interner.intern(&format!("{id}[{i}]")).ok()?
            } else {
                match sink.model.and_then(|m| m.item_id(id)) {
                    Some(shared) => shared.clone(),
                    None => sink.interner.intern(id).ok()?,
                }
            };
            if super::decode::push(sink.out, sink.device, item, sink.ts, value) {
                sink.stats.samples += 1;
            }
        }
        Some(())
    }

    fn values(&mut self, out: &mut Vec<Scalar>) -> Option<()> {
        if self.peek()? != b'[' {
            out.push(self.scalar()?);
            return Some(());
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            out.push(self.scalar()?);
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn number(text: &str) -> Option<f64> {
        let mut p = Parser {
            b: text.as_bytes(),
            s: text,
            i: 0,
        };
        let v = p.number()?;
        (p.i == text.len()).then_some(v)
    }

    #[test]
    fn numbers_follow_json_grammar() {
        for good in [
            "0",
            "-0",
            "1",
            "10.5",
            "-0.001",
            "1e3",
            "1E-2",
            "123456789012345",
            "0.1",
            "2.5e+10",
        ] {
            assert_eq!(number(good), Some(good.parse().unwrap()), "{good}");
        }
        for bad in ["01", "1.", ".5", "+1", "-", "1e", "--1", "0x10", "1.e3"] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The exact fast case gives the correctly rounded value, like a full parse.
        #[test]
        fn fast_numbers_are_correctly_rounded(text in "-?(0|[1-9][0-9]{0,14})(\\.[0-9]{1,15})?") {
            prop_assert_eq!(number(&text), Some(text.parse::<f64>().unwrap()), "{}", text);
        }
    }
}
