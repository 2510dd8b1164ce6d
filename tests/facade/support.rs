//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

/// Serves `app` on 127.0.0.1 with an ephemeral port (peer addresses available through
/// `ConnectInfo`); returns the base URL. The server lives until the test's runtime ends.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}
