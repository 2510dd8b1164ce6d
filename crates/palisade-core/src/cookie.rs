//! Reading one cookie from a request's `Cookie` header lines.

use http::HeaderMap;

/// The value of cookie `name` in the `Cookie` header lines (RFC 6265 §5.4:
/// `name=value; name2=value2`, lines in order), the first match winning; the value is
/// returned as sent (a quoted value keeps its quotes). Names match exactly; pairs without
/// `=` and lines that are not visible ASCII are skipped. No allocation; any input is
/// accepted and nothing panics.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.append(http::header::COOKIE, "session=1; tier=gold".parse().unwrap());
/// assert_eq!(palisade_core::cookie::cookie_value(&h, "tier"), Some("gold"));
/// assert_eq!(palisade_core::cookie::cookie_value(&h, "tie"), None);
/// ```
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// As [`cookie_value`], with one pair of enclosing double quotes removed (RFC 6265
/// §4.1.1: `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`): the value a
/// server set, quoted or not.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.append(http::header::COOKIE, "session=1; arm=\"canary\"; tier=gold".parse().unwrap());
/// assert_eq!(palisade_core::cookie::cookie_value_unquoted(&h, "arm"), Some("canary"));
/// assert_eq!(palisade_core::cookie::cookie_value_unquoted(&h, "tier"), Some("gold"));
/// assert_eq!(palisade_core::cookie::cookie_value_unquoted(&h, "ar"), None);
/// ```
pub fn cookie_value_unquoted<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookie_value(headers, name).map(|v| {
        v.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn unquoting_removes_one_enclosing_pair() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("a=\"x\"; b=\"; c=\"\"; d=\"y; e=\"\"z\"\""),
        );
        assert_eq!(cookie_value_unquoted(&h, "a"), Some("x"));
        assert_eq!(cookie_value_unquoted(&h, "b"), Some("\""));
        assert_eq!(cookie_value_unquoted(&h, "c"), Some(""));
        assert_eq!(cookie_value_unquoted(&h, "d"), Some("\"y"));
        assert_eq!(cookie_value_unquoted(&h, "e"), Some("\"z\""));
    }
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..3),
                        name in ".{0,8}") {
            let mut h = HeaderMap::new();
            for l in lines {
                if let Ok(v) = HeaderValue::from_bytes(&l) {
                    h.append(http::header::COOKIE, v);
                }
            }
            let _ = cookie_value(&h, &name);
        }

        // A cookie written among others is read back, whatever its neighbours.
        #[test]
        fn round_trips(name in "[a-z]{1,8}", value in "[!#-+\\--:<-\\[\\]-~]{0,16}",
                       before in proptest::collection::vec(("[A-Z]{1,4}", "[a-z0-9]{0,6}"), 0..3),
                       after in proptest::collection::vec(("[a-z]{1,8}", "[a-z0-9]{0,6}"), 0..3)) {
            let mut pairs: Vec<String> = before.iter().map(|(k, v)| format!("{k}={v}")).collect();
            pairs.push(format!("{name}={value}"));
            pairs.extend(after.iter().map(|(k, v)| format!("{k}={v}")));
            let mut h = HeaderMap::new();
            h.append(http::header::COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
            prop_assert_eq!(cookie_value(&h, &name), Some(value.as_str()));
        }
    }
}
