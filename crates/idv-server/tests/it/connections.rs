//! Slow and idle clients: the header-read timeout, the keep-alive idle
//! timeout and the connection bounds (issue 21, item 4).

use std::time::{Duration, Instant};

use idv_server::config::ConnectionLimits;
use idv_testkit::{Backend, Options, TestServer, backend_tests};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

backend_tests!(
    half_open_connections_are_closed_after_the_header_timeout,
    idle_keep_alive_connections_are_closed_after_the_header_timeout,
    connections_over_the_per_address_bound_are_closed_at_once,
    connections_over_the_total_bound_are_closed_at_once,
    shutdown_lets_in_flight_requests_finish,
);

async fn start(backend: Backend, limits: ConnectionLimits) -> TestServer {
    TestServer::start_with(
        backend,
        Options {
            connections: Some(limits),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap()
}

/// Waits up to `within` for the server to close `stream` (end of stream or
/// a reset); returns whether it did, having read and ignored any bytes.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that opens a connection per request: a pooled connection left
/// idle for the (short) test timeout may be closed by the server just as it
/// is reused, a race every keep-alive client has with any idle timeout.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

/// The value of the sample `series` in the server's metrics, read with
/// `client`.
async fn metric(s: &TestServer, client: &reqwest::Client, series: &str) -> f64 {
    let text = client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

async fn healthz(s: &TestServer) -> StatusCode {
    unpooled().get(s.url("/healthz")).send().await.unwrap().status()
}

/// 500 clients that send part of a request line and then nothing are all
/// disconnected within the header timeout plus a margin, while a normal
/// client's requests keep being answered.
async fn half_open_connections_are_closed_after_the_header_timeout(backend: Backend) {
    let timeout = Duration::from_secs(1);
    let s = start(
        backend,
        ConnectionLimits {
            header_timeout: timeout,
            max_per_ip: 1000,
            max: 1000,
        },
    )
    .await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut c = connect(&s).await;
        c.write_all(b"GET /healthz HTT").await.unwrap();
        slow.push(c);
    }
    // Normal requests are answered meanwhile.
    for _ in 0..5 {
        assert_eq!(healthz(&s).await, StatusCode::OK);
    }
    let margin = Duration::from_secs(3);
    let closers = slow.into_iter().map(|mut c| {
        let left = (timeout + margin).saturating_sub(started.elapsed());
        tokio::spawn(async move { closed_within(&mut c, left).await })
    });
    let mut open = 0;
    for closer in closers.collect::<Vec<_>>() {
        if !closer.await.unwrap() {
            open += 1;
        }
    }
    assert_eq!(
        open,
        0,
        "connections still open {:?} after they started",
        started.elapsed()
    );
    assert_eq!(healthz(&s).await, StatusCode::OK);
    assert!(metric(&s, &unpooled(), "idv_http_connections_timed_out_total").await >= 500.0);
    s.running.shutdown().await.unwrap();
}

/// A kept-alive connection serves further requests while they come in time,
/// and is closed once it has been idle for the header timeout.
async fn idle_keep_alive_connections_are_closed_after_the_header_timeout(backend: Backend) {
    let timeout = Duration::from_secs(1);
    let s = start(
        backend,
        ConnectionLimits {
            header_timeout: timeout,
            ..Default::default()
        },
    )
    .await;
    let mut c = connect(&s).await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: idv.test\r\n\r\n";
    for _ in 0..3 {
        c.write_all(request).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains(r#"{"status":"ok"}"#) {
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(n, 0, "closed while a request was answered");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
        // Idle for half the timeout: still open for the next request.
        tokio::time::sleep(timeout / 2).await;
    }
    let idle_since = Instant::now();
    assert!(closed_within(&mut c, timeout + Duration::from_secs(3)).await);
    assert!(
        idle_since.elapsed() >= timeout / 3,
        "closed too early: {:?}",
        idle_since.elapsed()
    );
    assert!(metric(&s, &unpooled(), "idv_http_connections_timed_out_total").await >= 1.0);
    s.running.shutdown().await.unwrap();
}

/// Over the per-address bound a new connection is closed at once and
/// counted; once one closes, the address may connect again.
async fn connections_over_the_per_address_bound_are_closed_at_once(backend: Backend) {
    let s = start(
        backend,
        ConnectionLimits {
            max_per_ip: 4,
            ..Default::default()
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&s).await);
    }
    let mut over = connect(&s).await;
    assert!(closed_within(&mut over, Duration::from_secs(2)).await);
    // The held ones are still served.
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: idv.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    held[0].read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held.remove(0));
    // A place is free again (once the server has seen the close).
    crate::eventually("a connection is accepted again", || async {
        s.http.get(s.url("/healthz")).send().await.is_ok()
    })
    .await;
    // Released before reading the metric: the client may open a new
    // connection for it, which at the bound would be refused.
    drop(held);
    assert!(metric(&s, &s.http, "idv_http_connections_refused_total{limit=\"per_ip\"}").await >= 1.0);
    s.running.shutdown().await.unwrap();
}

/// Over the bound on all connections a new one is closed at once.
async fn connections_over_the_total_bound_are_closed_at_once(backend: Backend) {
    let s = start(
        backend,
        ConnectionLimits {
            max: 3,
            ..Default::default()
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&s).await);
    }
    let mut over = connect(&s).await;
    assert!(closed_within(&mut over, Duration::from_secs(2)).await);
    held.clear();
    crate::eventually("a connection is accepted again", || async {
        s.http.get(s.url("/healthz")).send().await.is_ok()
    })
    .await;
    assert!(metric(&s, &unpooled(), "idv_http_connections_refused_total{limit=\"total\"}").await >= 1.0);
    s.running.shutdown().await.unwrap();
}

/// Stopping the server stops new connections, and a request already in
/// flight (here: its body half sent) is still answered.
async fn shutdown_lets_in_flight_requests_finish(backend: Backend) {
    let s = start(backend, ConnectionLimits::default()).await;
    let body = serde_json::to_vec(&crate::agent_body("in-flight")).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut c = connect(&s).await;
    let head = format!(
        "POST /v1/agents HTTP/1.1\r\nhost: idv.test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        s.token,
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(first).await.unwrap();
    // Let the server read the head before it is told to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = s.running.stop_handle().send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(s.base.trim_start_matches("http://")).await.is_err()
            || s.http.get(s.url("/healthz")).send().await.is_err(),
        "a new connection was served after the stop"
    );
    c.write_all(rest).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    s.running.wait().await.unwrap();
}
