use super::*;
use http::Request;
use proptest::prelude::*;

fn req_from(peer: &str, xff: &[&str]) -> Request<()> {
    let mut b = Request::get("/p?q=1");
    for v in xff {
        b = b.header("x-forwarded-for", *v);
    }
    let mut r = b.body(()).unwrap();
    r.extensions_mut()
        .insert(PeerAddr(format!("{peer}:1234").parse().unwrap()));
    r
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn untrusted_peer_cannot_spoof() {
    let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
    let r = req_from("198.51.100.7", &["1.1.1.1"]);
    assert_eq!(x.extract(&r).unwrap(), ip("198.51.100.7"));
}

#[test]
fn rightmost_untrusted_hop_wins() {
    let x = ForwardedIp::parse(["10.0.0.0/8", "192.168.1.1"]).unwrap();
    // client forged "6.6.6.6"; proxy 10.0.0.5 appended the real client 203.0.113.9;
    // inner proxy 192.168.1.1 appended 10.0.0.5.
    let r = req_from("192.168.1.1", &["6.6.6.6, 203.0.113.9", "10.0.0.5"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    // All hops trusted: the leftmost one is the client.
    let r = req_from("10.0.0.1", &["10.0.0.2, 10.0.0.3"]);
    assert_eq!(x.extract(&r).unwrap(), ip("10.0.0.2"));
    // No header at all from a trusted peer: the peer itself.
    let r = req_from("10.0.0.1", &[]);
    assert_eq!(x.extract(&r).unwrap(), ip("10.0.0.1"));
}

#[test]
fn malformed_hops_are_400_not_panics() {
    let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
    let r = req_from("10.0.0.1", &["not-an-ip"]);
    assert_eq!(
        x.extract(&r).unwrap_err(),
        KeyError::Invalid {
            what: "x-forwarded-for header"
        }
    );
    assert_eq!(x.extract(&r).unwrap_err().status(), 400);
}

#[test]
fn rfc7239_forwarded() {
    let x = ForwardedIp::parse(["10.0.0.0/8"])
        .unwrap()
        .header(ForwardingHeader::Forwarded);
    let mut r = Request::get("/")
        .header(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        )
        .body(())
        .unwrap();
    r.extensions_mut()
        .insert(PeerAddr("10.0.0.1:1".parse().unwrap()));
    assert_eq!(x.extract(&r).unwrap(), ip("2001:db8:cafe::17"));
}

fn forwarded_req(peer: &str, lines: &[&str]) -> Request<()> {
    let mut b = Request::get("/");
    for v in lines {
        b = b.header("forwarded", *v);
    }
    let mut r = b.body(()).unwrap();
    r.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
    r
}

#[test]
fn ipv4_mapped_peers_and_hops_are_ipv4() {
    // A dual-stack listener reports the IPv4 proxy 10.1.2.3 as ::ffff:10.1.2.3.
    let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
    let r = req_from("[::ffff:10.1.2.3]", &["203.0.113.9"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    // ...and a client behind it, reported mapped too, is keyed as IPv4.
    let r = req_from("[::ffff:10.1.2.3]", &["::ffff:203.0.113.9"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    // A mapped hop of a trusted proxy is skipped like its IPv4 form.
    let r = req_from("10.0.0.1", &["198.51.100.1, ::ffff:10.0.0.2"]);
    assert_eq!(x.extract(&r).unwrap(), ip("198.51.100.1"));
    // Untrusted mapped peer: its IPv4 form is the key.
    let r = req_from("[::ffff:198.51.100.7]", &["1.1.1.1"]);
    assert_eq!(x.extract(&r).unwrap(), ip("198.51.100.7"));
    assert_eq!(PeerIp.extract(&r).unwrap(), ip("198.51.100.7"));
    // Trusted CIDRs written in mapped form match IPv4 peers.
    let x = ForwardedIp::parse(["::ffff:10.0.0.0/104"]).unwrap();
    let r = req_from("10.1.2.3", &["203.0.113.9"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
}

#[test]
fn ipv6_clients_are_grouped_by_prefix() {
    let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap().ipv6_prefix(64);
    let r = req_from("10.0.0.1", &["2001:db8:1:2:aaaa:bbbb:cccc:dddd"]);
    assert_eq!(x.extract(&r).unwrap(), ip("2001:db8:1:2::"));
    let r = req_from("10.0.0.1", &["203.0.113.9"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    // Trust is checked on the full address, grouping applies to the key only.
    let x = ForwardedIp::parse(["2001:db8::1/128"])
        .unwrap()
        .ipv6_prefix(32);
    let r = req_from("[2001:db8::2]", &["1.1.1.1"]);
    assert_eq!(x.extract(&r).unwrap(), ip("2001:db8::"));
    let r = req_from("[2001:db8::1]", &["1.1.1.1"]);
    assert_eq!(x.extract(&r).unwrap(), ip("1.1.1.1"));
    let peer = PeerIp.ipv6_prefix(DEFAULT_IPV6_PREFIX);
    let r = req_from("[2001:db8:0:7:1:2:3:4]", &[]);
    assert_eq!(peer.extract(&r).unwrap(), ip("2001:db8:0:7::"));
    assert_eq!(PeerIp.extract(&r).unwrap(), ip("2001:db8:0:7:1:2:3:4"));
    assert_eq!(PeerIp.ipv6_prefix(200).bits(), 128);
    assert_eq!(ipv6_prefix(ip("2001:db8::1"), 0), ip("::"));
}

#[test]
fn forwarded_walks_from_the_right_and_skips_elements_without_for() {
    let x = ForwardedIp::parse(["10.0.0.0/8"])
        .unwrap()
        .header(ForwardingHeader::Forwarded);
    // The client sent `proto=https` (no for=); the trusted proxy appended the client.
    let r = forwarded_req("10.0.0.1:1", &["proto=https", "for=203.0.113.9;proto=http"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    let r = forwarded_req("10.0.0.1:1", &["proto=https, for=203.0.113.9"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    // Quoted commas and semicolons do not split elements.
    let r = forwarded_req(
        "10.0.0.1:1",
        &[r#"for=6.6.6.6, by="x,for=1.1.1.1;y";for="203.0.113.9:1", for=10.0.0.5"#],
    );
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    // Garbage left of the client is never reached; garbage where the walk stops is 400.
    let r = forwarded_req(
        "10.0.0.1:1",
        &["for=junk, for=\"unterminated", "for=203.0.113.9"],
    );
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    let r = forwarded_req("10.0.0.1:1", &["for=203.0.113.9, for=unknown"]);
    assert_eq!(
        x.extract(&r).unwrap_err(),
        KeyError::Invalid {
            what: "forwarded header"
        }
    );
    // A forged hop to the left stays unreached in X-Forwarded-For too.
    let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
    let r = req_from("10.0.0.1", &["not-an-ip, 203.0.113.9"]);
    assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
}

#[test]
fn bad_cidr_is_a_config_error() {
    let err = ForwardedIp::parse(["10.0.0.0/33"]).unwrap_err();
    assert_eq!(err.field(), "trusted_proxies[0]");
}

#[test]
fn header_key_limits() {
    let k = HeaderKey::new(HeaderName::from_static("x-api-key")).max_len(4);
    let ok = Request::get("/")
        .header("x-api-key", " ab ")
        .body(())
        .unwrap();
    assert_eq!(k.extract(&ok).unwrap(), "ab");
    let long = Request::get("/")
        .header("x-api-key", "abcde")
        .body(())
        .unwrap();
    assert!(matches!(k.extract(&long), Err(KeyError::Invalid { .. })));
    let bin = Request::get("/")
        .header("x-api-key", http::HeaderValue::from_bytes(b"\xff").unwrap())
        .body(())
        .unwrap();
    assert!(matches!(k.extract(&bin), Err(KeyError::Invalid { .. })));
    assert!(matches!(
        k.extract(&Request::new(())),
        Err(KeyError::Missing { .. })
    ));
}

#[test]
fn peer_path_global_tuple() {
    let r = req_from("127.0.0.1", &[]);
    assert_eq!(PeerIp.extract(&r).unwrap(), ip("127.0.0.1"));
    assert_eq!(PathKey.extract(&r).unwrap(), "/p");
    assert_eq!(
        (PeerIp, PathKey).extract(&r).unwrap(),
        (ip("127.0.0.1"), "/p".to_owned())
    );
    GlobalKey.extract(&r).unwrap();
    assert!(PeerIp.extract(&Request::new(())).is_err());
    let mut r = Request::new(());
    r.extensions_mut()
        .insert("[::1]:80".parse::<SocketAddr>().unwrap());
    assert_eq!(PeerIp.extract(&r).unwrap(), ip("::1"));
}

#[cfg(feature = "axum")]
#[test]
fn axum_connect_info_is_the_peer() {
    let mut r = Request::new(());
    r.extensions_mut().insert(axum::extract::ConnectInfo(
        "192.0.2.1:443".parse::<SocketAddr>().unwrap(),
    ));
    assert_eq!(PeerIp.extract(&r).unwrap(), ip("192.0.2.1"));
}

proptest! {
    // Whatever bytes a client puts in X-Forwarded-For, extraction never panics, and from
    // an untrusted peer the key is always the peer.
    #[test]
    fn never_panics_and_untrusted_is_peer(xff in proptest::collection::vec(any::<u8>(), 0..64)) {
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
        if let Ok(v) = http::HeaderValue::from_bytes(&xff) {
            let mut r = Request::get("/").header("x-forwarded-for", v.clone()).body(()).unwrap();
            r.extensions_mut().insert(PeerAddr("8.8.8.8:1".parse().unwrap()));
            prop_assert_eq!(x.extract(&r).unwrap(), ip("8.8.8.8"));
            let mut r = Request::get("/").header("x-forwarded-for", v.clone()).body(()).unwrap();
            r.extensions_mut().insert(PeerAddr("10.9.9.9:1".parse().unwrap()));
            let _ = x.extract(&r);
            let f = x.clone().header(ForwardingHeader::Forwarded);
            let mut r = Request::get("/").header("forwarded", v).body(()).unwrap();
            r.extensions_mut().insert(PeerAddr("10.9.9.9:1".parse().unwrap()));
            let _ = f.extract(&r);
        }
    }

    // Walking from the right: the key is the rightmost untrusted hop, whatever
    // garbage a client put to its left, and a client-sent element without `for=`
    // never makes it a 400.
    #[test]
    fn rightmost_untrusted_hop_whatever_is_left(
        garbage in "[ -~]{0,24}",
        client in any::<std::net::Ipv4Addr>(),
        proxies in proptest::collection::vec(0u8..255, 0..3),
    ) {
        prop_assume!(client.octets()[0] != 10);
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
        let chain: Vec<String> = proxies.iter().map(|p| format!("10.0.0.{p}")).collect();
        let mut xff = vec![garbage.replace(',', " "), client.to_string()];
        xff.extend(chain.iter().cloned());
        if let Ok(v) = http::HeaderValue::from_str(&xff.join(", ")) {
            let mut r = Request::get("/").header("x-forwarded-for", v).body(()).unwrap();
            r.extensions_mut().insert(PeerAddr("10.9.9.9:1".parse().unwrap()));
            prop_assert_eq!(x.extract(&r).unwrap(), IpAddr::V4(client));
        }
        let mut fwd = vec!["proto=https".to_owned(), format!("for={client}")];
        fwd.extend(chain.iter().map(|p| format!("for={p};by=\"_x,y\"")));
        let f = x.header(ForwardingHeader::Forwarded);
        let mut r = Request::get("/")
            .header("forwarded", fwd.join(", "))
            .body(())
            .unwrap();
        r.extensions_mut().insert(PeerAddr("[::ffff:10.9.9.9]:1".parse().unwrap()));
        prop_assert_eq!(f.extract(&r).unwrap(), IpAddr::V4(client));
    }
}

// cargo-mutants survivors of 2026-12-07 (see CONTRIBUTING.md).

#[test]
fn key_errors_say_what_is_wrong_and_render_as_bad_key() {
    let missing = KeyError::Missing { what: "api key" };
    let invalid = KeyError::Invalid { what: "api key" };
    assert_eq!(missing.to_string(), "request has no api key");
    assert_eq!(invalid.to_string(), "request has a malformed api key");
    assert_eq!(missing.kind(), "bad_key");
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn a_header_key_of_exactly_max_len_is_accepted_and_one_more_byte_is_not() {
    let key = HeaderKey::new(HeaderName::from_static("x-api-key")).max_len(4);
    let with = |v: &str| Request::get("/").header("x-api-key", v).body(()).unwrap();
    assert_eq!(key.extract(&with("abcd")).unwrap(), "abcd");
    assert!(matches!(
        key.extract(&with("abcde")),
        Err(KeyError::Invalid { .. })
    ));
}

#[test]
fn an_ipv6_prefix_longer_than_128_bits_keeps_the_address() {
    assert_eq!(ipv6_prefix(ip("2001:db8::1"), 200), ip("2001:db8::1"));
    assert_eq!(ipv6_prefix(ip("2001:db8::1"), 129), ip("2001:db8::1"));
}

#[test]
fn key_fn_debug_hides_the_closure() {
    assert_eq!(
        format!("{:?}", key_fn(|_: &Request<()>| Ok::<_, KeyError>(1))),
        "KeyFn { .. }"
    );
}
