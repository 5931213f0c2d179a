//! Accepting client connections: HTTP/1.1 on hyper with a header-read timer
//! that also bounds how long a kept-alive connection may sit idle, a bound on
//! connections per client address and in all, and graceful shutdown.
//!
//! axum's `serve` sets no timer, so a client that never finishes its headers
//! (slowloris) held its connection forever.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service as _;

use crate::config::ConnectionLimits;
use crate::metrics::Metrics;

/// Serves `router` on `listener` until `stop` turns `true`; then stops
/// accepting, lets in-flight requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    // hyper arms the header timer whenever it waits for a request head: for
    // the first request and, on a kept-alive connection, for each next one
    // (RFC 9112 §9.3), so the same timer closes idle connections.
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let table = Arc::new(Table::new(limits));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let slot = match table.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                let counter = match limit {
                    Refused::PerAddress => &metrics.connections_refused_per_ip,
                    Refused::Total => &metrics.connections_refused_capacity,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, ?limit, "connection refused");
                // Closed at once, unread.
                drop(stream);
                continue;
            }
        };
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        // The peer address feeds `context.source_ip` of decisions, through
        // axum's `ConnectInfo` extractor.
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    metrics.connections_timed_out.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// After a failed `accept`: errors of one connection are skipped; others
/// (out of file descriptors) pause accepting for a moment, as a tight loop
/// would only spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Which bound refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    PerAddress,
    Total,
}

/// Open connections by client address.
// INVARIANT: an entry exists only while it counts at least one connection,
// so the map never holds more entries than `limits.max`.
#[derive(Debug)]
struct Table {
    limits: ConnectionLimits,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; frees its place when dropped.
#[derive(Debug)]
struct Slot {
    table: Arc<Table>,
    key: IpAddr,
}

impl Table {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every
        // change is a single statement.
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = address_key(ip);
        let mut counts = self.counts();
        if counts.total >= self.limits.max {
            return Err(Refused::Total);
        }
        let n = counts.by_address.entry(key).or_insert(0);
        if *n >= self.limits.max_per_ip {
            return Err(Refused::PerAddress);
        }
        *n += 1;
        counts.total += 1;
        Ok(Slot {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.table.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_address.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_address.remove(&self.key);
            }
        }
    }
}

/// What connections are counted under: an IPv4 address, or an IPv6
/// address's /64 (one host or subscriber is usually given a whole /64, so a
/// per-address bound would be no bound).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, max_per_ip: usize) -> Arc<Table> {
        Arc::new(Table::new(ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            max_per_ip,
            max,
        }))
    }

    #[test]
    fn per_address_bound_refuses_and_frees() {
        let t = table(10, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = t.admit(a).unwrap();
        let _s2 = t.admit(a).unwrap();
        assert_eq!(t.admit(a).unwrap_err(), Refused::PerAddress);
        let _s3 = t.admit(b).unwrap();
        drop(s1);
        let _s4 = t.admit(a).unwrap();
    }

    #[test]
    fn total_bound_refuses() {
        let t = table(2, 5);
        let _s1 = t.admit("10.0.0.1".parse().unwrap()).unwrap();
        let _s2 = t.admit("10.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(t.admit("10.0.0.3".parse().unwrap()).unwrap_err(), Refused::Total);
    }

    #[test]
    fn entries_leave_the_map_when_their_last_connection_closes() {
        let t = table(10, 5);
        let s = t.admit("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(t.counts().by_address.len(), 1);
        drop(s);
        assert_eq!(t.counts().by_address.len(), 0);
        assert_eq!(t.counts().total, 0);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t = table(10, 1);
        let _s = t.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            t.admit("2001:db8::ffff:2".parse().unwrap()).unwrap_err(),
            Refused::PerAddress
        );
        let _s2 = t.admit("2001:db8:0:1::1".parse().unwrap()).unwrap();
        let _s3 = t.admit("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            t.admit("::ffff:10.0.0.1".parse().unwrap()).unwrap_err(),
            Refused::PerAddress
        );
    }
}
