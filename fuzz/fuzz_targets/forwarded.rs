//! `X-Forwarded-For` and RFC 7239 `Forwarded` behind a trusted proxy: the first byte picks the
//! header, the rest is its value (a `\n` splits it into several field lines).
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_core::KeyExtractor;
use palisade_core::key::{ForwardedIp, ForwardingHeader, PeerAddr};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (name, header) = if which & 1 == 0 {
        ("x-forwarded-for", ForwardingHeader::XForwardedFor)
    } else {
        ("forwarded", ForwardingHeader::Forwarded)
    };
    let mut req = http::Request::new(());
    for line in rest.split(|&b| b == b'\n') {
        let Ok(value) = http::HeaderValue::from_bytes(line) else {
            return;
        };
        req.headers_mut().append(name, value);
    }
    let peer = if which & 2 == 0 {
        "10.0.0.1:443"
    } else {
        "[::ffff:10.0.0.1]:443"
    };
    req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
    let key = ForwardedIp::parse(["10.0.0.0/8", "fd00::/8"])
        .unwrap()
        .header(header);
    let _ = key.extract(&req);
    if let Ok(line) = std::str::from_utf8(rest) {
        let _ = palisade_core::forwarded::forwarded_hops(line).count();
        let _ = palisade_core::forwarded::x_forwarded_for_hops(line).count();
    }
});
