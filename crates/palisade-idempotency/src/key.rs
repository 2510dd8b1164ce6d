//! Parsing the `Idempotency-Key` request header.
//!
//! The IETF draft (draft-ietf-httpapi-idempotency-key-header §2.1) defines the field as a
//! Structured Field Item (RFC 8941 / RFC 9651) whose value is an sf-string. By default
//! ([`KeyMode::Structured`]) the layer accepts an sf-string (`"k1"`: printable ASCII, only
//! `\"` and `\\` escapes) or an sf-token (`k1`: starts with a letter or `*`, then letters,
//! digits and `!#$%&'*+-.^_`|~:/`), and ignores parameters: `"k1";x=1` and `k1;x=1` both mean
//! `k1`. Anything else is refused with 400 and a problem body saying why: `a b` and `a,b`
//! (trailing characters), `@x` and `1abc` (not a string or token; a leading digit makes it a
//! number). [`KeyMode::Strict`] accepts only the sf-string. [`KeyMode::Lenient`] is the opt-in
//! for Stripe-style opaque keys: a value not starting with `"` is taken whole (trimmed, any
//! printable ASCII).

use http::HeaderMap;
use palisade_core::IdempotencyKeyInvalid;

/// The header names `idempotency-key` and `idempotent-replayed` (the replay marker, sent as
/// `true`), declared once in palisade-core.
pub use palisade_core::header::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};

/// Default longest key, in characters (Stripe's limit).
pub const DEFAULT_MAX_KEY_LEN: usize = 255;

/// How the header value is parsed; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum KeyMode {
    /// An sf-string or an sf-token, parameters ignored (default).
    #[default]
    Structured,
    /// An sf-string only (`Idempotency-Key: "k1"`); a token is refused with 400.
    Strict,
    /// Stripe-style opaque keys: an sf-string, or else the trimmed raw value (any printable
    /// ASCII, e.g. `a b` or `@x`).
    Lenient,
}

/// Reads the `Idempotency-Key` from `headers`.
///
/// `Ok(None)` when absent; `Err` when repeated, empty, longer than `max_len`, or not a valid
/// sf-string (or, in strict mode, not an sf-string at all).
///
/// ```
/// use palisade_idempotency::key::{parse_key_header, KeyMode};
/// let mut h = http::HeaderMap::new();
/// h.insert("idempotency-key", r#""a\"b";v=1"#.parse().unwrap());
/// assert_eq!(parse_key_header(&h, KeyMode::Strict, 255).unwrap().as_deref(), Some("a\"b"));
/// ```
pub fn parse_key_header(
    headers: &HeaderMap,
    mode: KeyMode,
    max_len: usize,
) -> Result<Option<String>, IdempotencyKeyInvalid> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(IdempotencyKeyInvalid::new("the header is repeated"));
    }
    parse_key(value.as_bytes(), mode, max_len).map(Some)
}

/// Parses one header value; see [`parse_key_header`].
pub fn parse_key(
    raw: &[u8],
    mode: KeyMode,
    max_len: usize,
) -> Result<String, IdempotencyKeyInvalid> {
    let trimmed = raw.trim_ascii();
    let key = match trimmed.first() {
        Some(b'"') => parse_sf_string(trimmed)?,
        _ if mode == KeyMode::Lenient => {
            if trimmed.iter().any(|&b| !(0x20..=0x7e).contains(&b)) {
                return Err(IdempotencyKeyInvalid::new(
                    "contains non-printable characters",
                ));
            }
            trimmed.iter().copied().map(char::from).collect()
        }
        _ if mode == KeyMode::Strict => {
            return Err(IdempotencyKeyInvalid::new(
                "not a structured-field string (expected a quoted value)",
            ));
        }
        None => return Err(IdempotencyKeyInvalid::new("empty")),
        Some(c) if c.is_ascii_alphabetic() || *c == b'*' => parse_sf_token(trimmed)?,
        Some(c) if c.is_ascii_digit() || *c == b'-' => {
            return Err(IdempotencyKeyInvalid::new(
                "a number, not a structured-field string or token (quote it: \"1abc\")",
            ));
        }
        Some(_) => {
            return Err(IdempotencyKeyInvalid::new(
                "not a structured-field string or token (quote it, or start it with a letter)",
            ));
        }
    };
    if key.is_empty() {
        return Err(IdempotencyKeyInvalid::new("empty"));
    }
    if key.len() > max_len {
        return Err(IdempotencyKeyInvalid::new("too long"));
    }
    Ok(key)
}

/// RFC 8941 §3.3.4 sf-token followed by optional parameters (ignored).
fn parse_sf_token(input: &[u8]) -> Result<String, IdempotencyKeyInvalid> {
    let end = input
        .iter()
        .position(|&c| !(is_tchar(c) || c == b':' || c == b'/'))
        .unwrap_or(input.len());
    let rest = &input[end..];
    if !rest.is_empty() && !valid_params(rest) {
        return Err(IdempotencyKeyInvalid::new(
            "trailing characters after token (a space or comma is not allowed; quote the key)",
        ));
    }
    Ok(input[..end].iter().copied().map(char::from).collect())
}

/// RFC 9110 tchar.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parses `"..."` followed by optional parameters (`;name[=value]`), which are ignored but
/// must be syntactically plausible (each starts with `;`).
fn parse_sf_string(input: &[u8]) -> Result<String, IdempotencyKeyInvalid> {
    debug_assert_eq!(input.first(), Some(&b'"'));
    let mut out = Vec::with_capacity(input.len());
    let mut i = 1;
    loop {
        let Some(&c) = input.get(i) else {
            return Err(IdempotencyKeyInvalid::new("unterminated string"));
        };
        i += 1;
        match c {
            b'\\' => match input.get(i) {
                Some(&e @ (b'"' | b'\\')) => {
                    out.push(e);
                    i += 1;
                }
                Some(_) => return Err(IdempotencyKeyInvalid::new("invalid escape in string")),
                None => return Err(IdempotencyKeyInvalid::new("unterminated string")),
            },
            b'"' => break,
            0x20..=0x7e => out.push(c),
            _ => {
                return Err(IdempotencyKeyInvalid::new(
                    "contains non-printable characters",
                ));
            }
        }
    }
    let rest = &input[i..];
    if !rest.is_empty() && !valid_params(rest) {
        return Err(IdempotencyKeyInvalid::new(
            "trailing characters after string",
        ));
    }
    // Only printable ASCII was pushed.
    String::from_utf8(out)
        .map_err(|_| IdempotencyKeyInvalid::new("contains non-printable characters"))
}

/// RFC 8941 §3.1.2 parameters: `*( ";" *SP key [ "=" bare-item ] )`. Values are checked
/// loosely (printable ASCII, quoted strings balanced); they are ignored anyway.
fn valid_params(mut rest: &[u8]) -> bool {
    while !rest.is_empty() {
        let Some(r) = rest.strip_prefix(b";") else {
            return false;
        };
        rest = r.trim_ascii_start();
        // key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
        match rest.first() {
            Some(c) if c.is_ascii_lowercase() || *c == b'*' => {}
            _ => return false,
        }
        let end = rest
            .iter()
            .position(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(c)))
            .unwrap_or(rest.len());
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(b"=") {
            rest = r;
            if rest.first() == Some(&b'"') {
                match parse_sf_string_prefix(rest) {
                    Some(n) => rest = &rest[n..],
                    None => return false,
                }
            } else {
                let end = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
                let value = &rest[..end];
                if value.is_empty() || value.iter().any(|&c| !(0x21..=0x7e).contains(&c)) {
                    return false;
                }
                rest = &rest[end..];
            }
        }
    }
    true
}

/// Length of a well-formed sf-string at the start of `input`, if any.
fn parse_sf_string_prefix(input: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *input.get(i)? {
            b'\\' => {
                if !matches!(input.get(i + 1)?, b'"' | b'\\') {
                    return None;
                }
                i += 2;
            }
            b'"' => return Some(i + 1),
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lenient(s: &str) -> Result<String, &'static str> {
        parse_key(s.as_bytes(), KeyMode::Lenient, 255).map_err(|e| e.reason)
    }
    fn strict(s: &str) -> Result<String, &'static str> {
        parse_key(s.as_bytes(), KeyMode::Strict, 255).map_err(|e| e.reason)
    }
    fn structured(s: &str) -> Result<String, &'static str> {
        parse_key(s.as_bytes(), KeyMode::Structured, 255).map_err(|e| e.reason)
    }

    #[test]
    fn structured_accepts_string_or_token_and_ignores_parameters() {
        assert_eq!(structured(r#""k1";x=1"#).unwrap(), "k1");
        assert_eq!(structured("k1;x=1").unwrap(), "k1");
        assert_eq!(structured("k1").unwrap(), "k1");
        assert_eq!(
            structured("*a:b/c!#$%&'*+-.^_`|~9").unwrap(),
            "*a:b/c!#$%&'*+-.^_`|~9"
        );
        assert_eq!(structured(r#"k1;a="x;y";b"#).unwrap(), "k1");
        assert_eq!(structured(r#""a\"b""#).unwrap(), "a\"b");
        for bad in ["a b", "a,b", "k1;", "k1;A=1", "k1\"x\""] {
            assert!(
                structured(bad)
                    .unwrap_err()
                    .starts_with("trailing characters after token"),
                "{bad}"
            );
        }
        assert!(
            structured("@x")
                .unwrap_err()
                .starts_with("not a structured-field")
        );
        assert!(structured("1abc").unwrap_err().starts_with("a number"));
        assert!(structured("-1").unwrap_err().starts_with("a number"));
        assert_eq!(structured(""), Err("empty"));
        assert_eq!(structured("  "), Err("empty"));
        // Lenient takes them whole; strict refuses the token too.
        assert_eq!(lenient("a b").unwrap(), "a b");
        assert_eq!(lenient("@x").unwrap(), "@x");
        assert!(strict("k1;x=1").is_err());
        assert_eq!(structured(&"a".repeat(256)), Err("too long"));
    }

    /// Parameter keys and bare values follow RFC 8941 §3.1.2 (kills the `cargo mutants`
    /// survivors in `valid_params`).
    #[test]
    fn parameters_are_checked() {
        assert_eq!(strict(r#""k";*a=1"#).unwrap(), "k");
        assert_eq!(strict(r#""k";a_b-c.d*e9=1;z"#).unwrap(), "k");
        assert_eq!(structured("k;a_b-c.d*e9"), Ok("k".to_owned()));
        for bad in [
            r#""k";1a"#,
            r#""k";_a=1"#,
            r#""k";a="#,
            r#""k";a=b c"#,
            r#""k";a=1;"#,
            r#""k";a/b=1"#,
        ] {
            assert!(strict(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sf_string_escapes_exactly() {
        // Each escape yields the escaped character and nothing else.
        assert_eq!(strict(r#""\\""#).unwrap(), "\\");
        assert_eq!(strict(r#""\"""#).unwrap(), "\"");
        assert_eq!(strict(r#""a\\\"b""#).unwrap(), "a\\\"b");
        assert_eq!(strict(r#""\x""#), Err("invalid escape in string"));
        // An escaped quote does not end the string.
        assert_eq!(strict(r#""a\""#), Err("unterminated string"));
        // Escapes inside a parameter's string value are checked too.
        assert_eq!(strict(r#""k";p="\"""#).unwrap(), "k");
        assert!(strict(r#""k";p="\x""#).is_err());
        assert!(strict(r#""k";p="unterminated"#).is_err());
        assert!(strict("\"k\";p=\"a\u{1}\"").is_err());
    }

    #[test]
    fn sf_strings() {
        assert_eq!(strict(r#""k1""#).unwrap(), "k1");
        assert_eq!(strict(r#"  "k1"  "#).unwrap(), "k1");
        assert_eq!(strict(r#""a\"b\\c""#).unwrap(), "a\"b\\c");
        assert_eq!(strict(r#""k1";a=1;b;c="x;y""#).unwrap(), "k1");
        assert_eq!(strict(r#""k 1""#).unwrap(), "k 1");
        assert_eq!(strict(r#""k1"#), Err("unterminated string"));
        assert_eq!(strict(r#""k1\"#), Err("unterminated string"));
        assert_eq!(strict(r#""a\nb""#), Err("invalid escape in string"));
        assert_eq!(strict(r#""k1"x"#), Err("trailing characters after string"));
        assert_eq!(strict(r#""k1";"#), Err("trailing characters after string"));
        assert_eq!(
            strict(r#""k1";A=1"#),
            Err("trailing characters after string")
        );
        assert_eq!(
            strict(r#""k1", "k2""#),
            Err("trailing characters after string")
        );
        assert_eq!(strict(r#""""#), Err("empty"));
        assert_eq!(strict("\"a\tb\""), Err("contains non-printable characters"));
    }

    #[test]
    fn bare_tokens() {
        assert_eq!(lenient("k1").unwrap(), "k1");
        assert_eq!(lenient("  k1 ").unwrap(), "k1");
        assert_eq!(lenient("").unwrap_err(), "empty");
        assert_eq!(lenient("   ").unwrap_err(), "empty");
        assert!(strict("k1").is_err());
        assert!(lenient("a\u{7f}").is_err());
    }

    #[test]
    fn length_limit() {
        let ok = "a".repeat(255);
        let long = "a".repeat(256);
        assert_eq!(lenient(&ok).unwrap(), ok);
        assert_eq!(lenient(&long), Err("too long"));
        assert_eq!(strict(&format!("\"{long}\"")), Err("too long"));
        assert_eq!(strict(&format!("\"{ok}\"")).unwrap(), ok);
    }

    #[test]
    fn header_map() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_key_header(&h, KeyMode::Lenient, 255).unwrap(), None);
        h.append(IDEMPOTENCY_KEY, "\"a\"".parse().unwrap());
        assert_eq!(
            parse_key_header(&h, KeyMode::Lenient, 255)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        h.append(IDEMPOTENCY_KEY, "\"b\"".parse().unwrap());
        assert_eq!(
            parse_key_header(&h, KeyMode::Lenient, 255)
                .unwrap_err()
                .reason,
            "the header is repeated"
        );
    }

    proptest! {
        /// Any printable ASCII key, serialized as an sf-string, parses back to itself.
        #[test]
        fn sf_string_round_trip(key in "[ -~]{1,255}") {
            let mut ser = String::from("\"");
            for c in key.chars() {
                if c == '"' || c == '\\' { ser.push('\\'); }
                ser.push(c);
            }
            ser.push('"');
            prop_assert_eq!(parse_key(ser.as_bytes(), KeyMode::Strict, 255).unwrap(), key);
        }

        /// Arbitrary bytes never panic, and what parses is non-empty printable ASCII within the limit.
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300), strict in any::<bool>()) {
            let mode = if strict { KeyMode::Strict } else { KeyMode::Lenient };
            if let Ok(k) = parse_key(&raw, mode, 255) {
                prop_assert!(!k.is_empty() && k.len() <= 255);
                prop_assert!(k.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
        }
    }
}
