//! [`Exchange`]: one recorded request/response pair, one JSON line of a recording.

use std::io::{self, BufRead};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The value written in place of a redacted header's value.
pub const REDACTED: &str = "[redacted]";

/// One request and its response, as a line of a recording (JSON, one object per line).
///
/// ```json
/// {"seq":0,"at_us":0,"duration_us":1500,"method":"GET","uri":"/a","status":200,
///  "request":{"headers":[["authorization","[redacted]"]],"body_len":0},
///  "response":{"headers":[["content-type","application/json"]],"body":"{\"n\":1}","body_len":7}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Exchange {
    /// Order of the request among those recorded (from 0).
    pub seq: u64,
    /// When the request arrived, in microseconds since the recording started (its pace).
    pub at_us: u64,
    /// From the request's arrival to its response body's end (or its error), in microseconds.
    pub duration_us: u64,
    /// The request method.
    pub method: String,
    /// The request URI as received (a path and query on a server).
    pub uri: String,
    /// The response status; `None` when the service failed with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The service's error, when it failed instead of answering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The request's chosen headers and body.
    pub request: Message,
    /// The response's chosen headers and body (empty after an error).
    pub response: Message,
}

/// Headers and body of one side of an [`Exchange`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Message {
    /// Recorded headers, in order, names lowercase; redacted values are [`REDACTED`].
    pub headers: Vec<(String, String)>,
    /// The body as text, when the recorded bytes are UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body as lowercase hex, when the recorded bytes are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
    /// The body's full length in bytes (what went through, recorded or not).
    pub body_len: u64,
    /// Whether only the first bytes of the body were recorded (the recorder's body bound).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Message {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The recorded body bytes (`None` when a `body_hex` is not valid hex).
    pub fn body_bytes(&self) -> Option<Bytes> {
        match (&self.body, &self.body_hex) {
            (Some(text), _) => Some(Bytes::copy_from_slice(text.as_bytes())),
            (None, Some(hex)) => from_hex(hex).map(Bytes::from),
            (None, None) => Some(Bytes::new()),
        }
    }

    /// Stores `bytes` as text when UTF-8, as hex otherwise.
    pub(crate) fn set_body(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => self.body = Some(text.to_owned()),
            Err(_) => self.body_hex = Some(to_hex(bytes)),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Reads a recording: one [`Exchange`] per non-empty line. A line that is not an exchange
/// is an [`io::ErrorKind::InvalidData`] error naming its line number.
pub fn read_recording(reader: impl BufRead) -> io::Result<Vec<Exchange>> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let exchange = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {e}", i + 1))
        })?;
        out.push(exchange);
    }
    Ok(out)
}

/// Reads the recording in file `path` (see [`read_recording`]).
pub fn read_recording_file(path: impl AsRef<std::path::Path>) -> io::Result<Vec<Exchange>> {
    read_recording(io::BufReader::new(std::fs::File::open(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_as_text_or_hex() {
        let mut m = Message::default();
        m.set_body(b"{\"a\":1}");
        assert_eq!(m.body.as_deref(), Some("{\"a\":1}"));
        assert_eq!(m.body_bytes().unwrap(), "{\"a\":1}");
        let mut m = Message::default();
        m.set_body(&[0xff, 0x00, 0x10]);
        assert_eq!(m.body_hex.as_deref(), Some("ff0010"));
        assert_eq!(m.body_bytes().unwrap().as_ref(), &[0xff, 0x00, 0x10]);
        m.body_hex = Some("f".into());
        assert_eq!(m.body_bytes(), None);
        m.body_hex = Some("zz".into());
        assert_eq!(m.body_bytes(), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let text = "{\"seq\":1,\"method\":\"GET\",\"uri\":\"/\"}\n\nnot json\n";
        let err = read_recording(text.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().starts_with("line 3:"), "{err}");
        let ok = read_recording(text.lines().next().unwrap().as_bytes()).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].seq, 1);
    }
}
