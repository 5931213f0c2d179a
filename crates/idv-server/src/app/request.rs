//! The request being served, as the HTTP edge saw it: its id and the peer's
//! address. The edge builds a [`RequestContext`] once per request and runs
//! the request inside it (and inside a `request` tracing span carrying the
//! id), so use cases read it here instead of taking ids through every
//! function. Outside a request (jobs, startup) there is none.

use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// What the edge knows of the request being served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The request id (echoed in `X-Request-Id` and recorded with every
    /// audit event the request causes).
    pub id: String,
    /// The peer's address, if known.
    pub peer: Option<IpAddr>,
}

impl RequestContext {
    /// Runs `f` as the serving of this request.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// The current request's id (empty outside a request).
pub fn id() -> String {
    CURRENT.try_with(|c| c.id.clone()).unwrap_or_default()
}

/// The current request's peer address, if known.
pub fn peer() -> Option<IpAddr> {
    CURRENT.try_with(|c| c.peer).ok().flatten()
}
