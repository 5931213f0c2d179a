//! A small client of the admin API: adds the token and tenant (or, on the
//! agents' self-service endpoints, the agent's own credential), turns
//! problem+json answers into one-line errors.

use anyhow::{Context as _, anyhow, bail};
use idv_api::Problem;
use reqwest::header::{CONTENT_TYPE, ETAG, HeaderMap};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::{AgentAuth, Connection};

/// The header a platform operator uses to pick a tenant.
const TENANT_HEADER: &str = "x-idv-tenant";

/// An authenticated connection to one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    auth: Auth,
    tenant: Option<String>,
    http: reqwest::Client,
}

/// How requests authenticate.
#[derive(Clone)]
enum Auth {
    /// An admin token, or an agent's API key.
    Bearer(String),
    /// An agent's `client_id` and client secret.
    Basic(String, String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(…)"),
            Auth::Basic(id, _) => write!(f, "Basic({id}, …)"),
        }
    }
}

impl Client {
    /// A client from the connection flags; fails when no token is set.
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        let token = conn
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("no admin token: set IDV_TOKEN or pass --token"))?;
        // An empty `IDV_TENANT=` is unset, as shells mean it.
        let tenant = conn.tenant.clone().filter(|t| !t.trim().is_empty());
        Self::with(conn, Auth::Bearer(token), tenant)
    }

    /// A client that authenticates as an agent (its client secret or API
    /// key), for the `/v1/self/…` endpoints.
    pub fn agent(conn: &Connection, agent: &AgentAuth) -> anyhow::Result<Self> {
        let auth = match (&agent.client_id, &agent.client_secret, &agent.api_key) {
            (_, _, Some(key)) => Auth::Bearer(key.clone()),
            (Some(id), Some(secret), None) => Auth::Basic(id.clone(), secret.clone()),
            _ => bail!(
                "authenticate as the agent: set IDV_CLIENT_ID and IDV_CLIENT_SECRET (or pass --client-id and \
                 --client-secret), or IDV_API_KEY (--api-key)"
            ),
        };
        Self::with(conn, auth, None)
    }

    fn with(conn: &Connection, auth: Auth, tenant: Option<String>) -> anyhow::Result<Self> {
        let base = conn.addr.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("IDV_ADDR must start with http:// or https://, not `{base}`");
        }
        Ok(Self {
            base,
            auth,
            tenant,
            http: reqwest::Client::builder()
                .build()
                .context("cannot set up the HTTP client")?,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        let mut req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(id, secret) => req.basic_auth(id, Some(secret)),
        };
        if let Some(t) = &self.tenant {
            req = req.header(TENANT_HEADER, t);
        }
        req
    }

    async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let res = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach IdentityVault at {}: {}", self.base, root_cause(&e)))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(problem_error(res).await)
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let res = self.send(self.request(Method::GET, path)).await?;
        decode(res).await
    }

    /// `GET path` as JSON, with the `ETag` version.
    pub async fn get_versioned<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<(T, Option<String>)> {
        let res = self.send(self.request(Method::GET, path)).await?;
        let etag = etag(res.headers());
        Ok((decode(res).await?, etag))
    }

    /// `GET path` as a response to stream.
    pub async fn get_raw(&self, path: &str) -> anyhow::Result<Response> {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let res = self.send(self.request(Method::POST, path).json(body)).await?;
        decode(res).await
    }

    /// `PATCH path` with a JSON merge patch and `If-Match`.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        if_match: &str,
    ) -> anyhow::Result<T> {
        let req = self
            .request(Method::PATCH, path)
            .header("if-match", if_match)
            .header(CONTENT_TYPE, "application/merge-patch+json")
            .body(serde_json::to_vec(body)?);
        let res = self.send(req).await?;
        decode(res).await
    }

    /// `PATCH path` with a JSON body (no version check).
    pub async fn patch_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let res = self.send(self.request(Method::PATCH, path).json(body)).await?;
        decode(res).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let res = self.send(self.request(Method::PUT, path).json(body)).await?;
        decode(res).await
    }

    /// `DELETE path`, answered with no content.
    pub async fn delete_empty(&self, path: &str) -> anyhow::Result<()> {
        self.send(self.request(Method::DELETE, path)).await?;
        Ok(())
    }

    /// `DELETE path`, answered with JSON.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let res = self.send(self.request(Method::DELETE, path)).await?;
        decode(res).await
    }
}

fn etag(headers: &HeaderMap) -> Option<String> {
    headers.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn decode<T: DeserializeOwned>(res: Response) -> anyhow::Result<T> {
    let bytes = res.bytes().await.context("the server's answer was cut off")?;
    serde_json::from_slice(&bytes)
        .context("the server's answer is not the JSON expected (is IDV_ADDR an IdentityVault?)")
}

/// A problem+json answer: its one clear line (and any policy compile
/// problems under it) is the error's message; commands that sent files may
/// [`ServerProblem::naming`] them in it.
#[derive(Debug)]
pub struct ServerProblem(Problem);

impl ServerProblem {
    /// The message with each compile problem's source (`policies`,
    /// `schema`) replaced by what `name` calls it (e.g. the file it came from).
    pub fn naming(&self, name: &dyn Fn(&str) -> String) -> String {
        let p = &self.0;
        let mut line = format!("{} ({}): {}", p.title, p.status, p.detail);
        if let Some(s) = &p.current_state {
            line.push_str(&format!(" [current state: {s}]"));
        }
        if let Some(v) = &p.current_version {
            line.push_str(&format!(" [current version: {v}]"));
        }
        // Policy compile problems, one per line, compiler style.
        for e in p.errors.iter().flatten() {
            line.push_str(&format!("\n  {}", compile_problem(e, &name(&e.source))));
        }
        line
    }
}

impl std::fmt::Display for ServerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.naming(&str::to_owned))
    }
}

impl std::error::Error for ServerProblem {}

/// One compile problem, compiler style: `<name>[:line:column]: message [policy id]`.
pub fn compile_problem(e: &idv_api::PolicyProblem, name: &str) -> String {
    let at = match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{name}:{l}:{c}"),
        _ => name.to_owned(),
    };
    let id = e
        .policy_id
        .as_deref()
        .map(|i| format!(" [policy {i}]"))
        .unwrap_or_default();
    format!("{at}: {}{id}", e.message)
}

/// Turns an error answer into one clear line.
async fn problem_error(res: Response) -> anyhow::Error {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(idv_api::PROBLEM_JSON));
    let body = res.bytes().await.unwrap_or_default();
    if is_problem && let Ok(p) = serde_json::from_slice::<Problem>(&body) {
        return ServerProblem(p).into();
    }
    if status == StatusCode::NOT_FOUND {
        return anyhow!("not found (404): is IDV_ADDR an IdentityVault server?");
    }
    anyhow!("the server answered {status}")
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Percent-encodes a query or path component: every byte but the unreserved
/// characters of RFC 3986 §2.3 as `%XX`. Not form encoding: in a path `+` is a
/// plus sign (RFC 3986 §3.3), so a space there must be `%20`, or the server
/// would see (and echo) `a+b` for `a b`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `path?k=v&…` from the pairs that are set.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded_not_form_encoded() {
        assert_eq!(encode("<approval id>"), "%3Capproval%20id%3E");
        assert_eq!(encode("a+b/c?d"), "a%2Bb%2Fc%3Fd");
        assert_eq!(encode("Az09-._~"), "Az09-._~");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
