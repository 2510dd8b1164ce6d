//! [`HttpTarget`]: a candidate reached over HTTP/1 (hyper-util's client).

use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

type Inner = Client<HttpConnector, Full<Bytes>>;

/// A service sending each request to `base` (an `http://` URL): the request's path and
/// query are appended to the base's path, its scheme and authority replace the request's.
///
/// Needs a Tokio runtime with I/O enabled.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: Inner,
    scheme: Scheme,
    authority: http::uri::Authority,
    prefix: String,
}

impl HttpTarget {
    /// A target at `base`; an error names what is wrong with it (not `http`, no host).
    pub fn new(base: &str) -> Result<Self, String> {
        let uri: Uri = base.parse().map_err(|e| format!("bad URL {base:?}: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!("bad URL {base:?}: only http:// is supported"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("bad URL {base:?}: no host"))?;
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            scheme: Scheme::HTTP,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    fn target(&self, uri: &Uri) -> Option<Uri> {
        let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let pq: PathAndQuery = format!("{}{pq}", self.prefix).parse().ok()?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }
}

impl Service<Request<Full<Bytes>>> for HttpTarget {
    type Response = <Inner as Service<Request<Full<Bytes>>>>::Response;
    type Error = <Inner as Service<Request<Full<Bytes>>>>::Error;
    type Future = <Inner as Service<Request<Full<Bytes>>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request<Full<Bytes>>>::poll_ready(&mut self.client, cx)
    }

    fn call(&mut self, mut req: Request<Full<Bytes>>) -> Self::Future {
        if let Some(uri) = self.target(req.uri()) {
            *req.uri_mut() = uri;
        }
        self.client.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_prefixes_the_recorded_path() {
        let t = HttpTarget::new("http://127.0.0.1:8080/v2/").unwrap();
        let u = t.target(&"/orders?id=1".parse().unwrap()).unwrap();
        assert_eq!(u, "http://127.0.0.1:8080/v2/orders?id=1");
        let t = HttpTarget::new("http://localhost:1").unwrap();
        let u = t.target(&"http://other/x".parse().unwrap()).unwrap();
        assert_eq!(u, "http://localhost:1/x");
        assert!(
            HttpTarget::new("https://x")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(HttpTarget::new("/x").unwrap_err().contains("bad URL"));
    }
}
