//! Clients that open connections and never finish their headers are cut off after the header
//! read timeout, and no more than the connection cap are served at once.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{TestApp, TestEnv};

fn socket_addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

/// A connection that has sent part of a request's headers and then goes quiet.
async fn slow_client(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(socket_addr(app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: dentite.test\r\nX-Slow: ")
        .await
        .unwrap();
    stream
}

/// Reads until the server closes the connection; whatever it sent first, and whether it closed
/// within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> (bool, String) {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    (
        outcome.is_ok(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

#[tokio::test]
async fn slow_partial_header_connections_are_closed_after_the_header_read_timeout() {
    let app = TestEnv::new()
        .var("HTTP_HEADER_READ_TIMEOUT_MS", "1000")
        .spawn()
        .await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(slow_client(&app).await);
    }
    // Trickling more header bytes does not buy more time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for client in &mut clients {
        client.write_all(b"a").await.unwrap();
    }

    for client in &mut clients {
        let (closed, _) = closed_within(client, Duration::from_secs(5)).await;
        assert!(
            closed,
            "a slow connection is still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
    // The server still answers a client that sends its request.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_connection_beyond_the_cap_is_served_only_once_another_closes() {
    let app = TestEnv::new()
        .var("HTTP_MAX_CONNECTIONS", "2")
        .var("HTTP_HEADER_READ_TIMEOUT_MS", "1500")
        .spawn()
        .await;
    let _slow = [slow_client(&app).await, slow_client(&app).await];
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut third = TcpStream::connect(socket_addr(&app)).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: dentite.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut first_bytes = [0u8; 12];
    let early =
        tokio::time::timeout(Duration::from_millis(800), third.read(&mut first_bytes)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two others held the cap"
    );

    // The slow ones time out, freeing the slots; then the waiting request is answered.
    let (closed, response) = closed_within(&mut third, Duration::from_secs(5)).await;
    assert!(
        closed,
        "no answer {:?} after the slow connections timed out",
        started.elapsed()
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
}
