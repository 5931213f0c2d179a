//! The web console at `/console`: server-rendered HTML (askama templates in
//! `templates/console/`, compiled into the binary) with htmx for partial
//! updates, its assets embedded too. Every action goes through the same use
//! cases as the admin API (`crate::app`): the same permission checks and
//! the same audit events, with the signed-in person's session as the actor.
//!
//! A page is a handler in its own module, a template and a test; it is
//! registered in [`router`] and, if it belongs in the navigation, in
//! [`NAV`]. Nothing else changes.
//!
//! Hardening, for every response: a strict Content-Security-Policy (no
//! inline script or style, `frame-ancestors 'none'`), `no-store` caching,
//! no referrer outside our origin (`same-origin`: with `no-referrer` the
//! browser would send `Origin: null`, and the origin check needs it). Every state-changing request must carry the session's CSRF
//! token (a form field or the `X-CSRF-Token` header htmx sends) and come
//! from our own origin ([`session`]).

mod access_requests;
mod agents;
mod approvals;
mod assets;
mod audit;
mod credentials;
mod export;
mod graph;
mod operations;
mod overview;
mod policies;
mod roi;
mod session;
mod sessions;
mod tenants;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use self::session::Viewer;
use crate::AppState;
use crate::app::AppError;
use crate::http::error::ApiError;

/// The console's routes (merged into the server's router; not part of the
/// admin API's OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/sso/start", get(session::sso_start))
        .route("/console/sso/callback", get(session::sso_callback))
        .route("/console/agents", get(agents::inventory).post(agents::register))
        .route(
            "/console/access-requests",
            get(access_requests::page).post(access_requests::create),
        )
        .route("/console/access-requests/{id}", post(access_requests::decide))
        .route("/console/policies", get(policies::page))
        .route("/console/policies/activate", post(policies::activate))
        .route("/console/policies/test", post(policies::test))
        .route("/console/policies/{version}", get(policies::version))
        .route("/console/agents/bulk", post(agents::bulk))
        .route("/console/agents/export", get(agents::export))
        .route("/console/agents/{id}", get(agents::detail))
        .route("/console/agents/{id}/lifecycle", post(agents::lifecycle))
        .route("/console/agents/{id}/credentials", post(credentials::issue))
        .route("/console/agents/{id}/compromised", post(credentials::compromised))
        .route("/console/credentials/{id}/rotate", post(credentials::rotate))
        .route("/console/credentials/{id}/revoke", post(credentials::revoke))
        .route("/console/graph", get(graph::page))
        .route("/console/graph/data", get(graph::data))
        .route("/console/heatmap", get(graph::heat_page))
        .route("/console/heatmap/data", get(graph::heat_data))
        .route("/console/approvals", get(approvals::page))
        .route("/console/approvals/{id}", post(approvals::decide))
        .route("/console/roi", get(roi::page))
        .route("/console/rotation", get(operations::rotation))
        .route("/console/leases", get(operations::leases))
        .route("/console/webhooks", get(operations::webhooks))
        .route("/console/audit", get(audit::list))
        .route("/console/audit/export", get(audit::export))
        .route("/console/webhooks/{id}", get(operations::webhook))
        .route(
            "/console/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(operations::redeliver),
        )
        .route("/console/audit/verify", post(audit::verify))
        .route("/console/audit/{seq}", get(audit::event))
        .route("/console/tenants", get(tenants::page))
        .route("/console/sessions", get(sessions::page))
        .route("/console/sessions/{id}/end", post(sessions::end))
        .route("/console/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn(harden))
}

/// One entry of the navigation.
#[derive(Debug)]
pub struct NavItem {
    /// Where it leads.
    pub href: &'static str,
    /// What it says.
    pub label: &'static str,
    /// Who sees it.
    pub needs: Needs,
}

/// Who a navigation entry is for (the server refuses the others anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Everyone signed in.
    Anyone,
    /// Everyone but owners (the page spans the tenant).
    Tenant,
    /// Those who may read the audit log.
    Audit,
    /// Platform operators.
    Platform,
}

/// The navigation, in order.
pub const NAV: &[NavItem] = &[
    NavItem {
        href: "/console",
        label: "Overview",
        needs: Needs::Anyone,
    },
    NavItem {
        href: "/console/agents",
        label: "Agents",
        needs: Needs::Anyone,
    },
    NavItem {
        href: "/console/approvals",
        label: "Approvals",
        needs: Needs::Anyone,
    },
    NavItem {
        href: "/console/access-requests",
        label: "Access requests",
        needs: Needs::Anyone,
    },
    NavItem {
        href: "/console/policies",
        label: "Policies",
        needs: Needs::Tenant,
    },
    NavItem {
        href: "/console/graph",
        label: "Graph",
        needs: Needs::Tenant,
    },
    NavItem {
        href: "/console/heatmap",
        label: "Heat map",
        needs: Needs::Tenant,
    },
    NavItem {
        href: "/console/audit",
        label: "Audit",
        needs: Needs::Audit,
    },
    NavItem {
        href: "/console/rotation",
        label: "Rotation",
        needs: Needs::Anyone,
    },
    NavItem {
        href: "/console/leases",
        label: "Leases",
        needs: Needs::Tenant,
    },
    NavItem {
        href: "/console/webhooks",
        label: "Webhooks",
        needs: Needs::Audit,
    },
    NavItem {
        href: "/console/tenants",
        label: "Tenants",
        needs: Needs::Platform,
    },
    NavItem {
        href: "/console/roi",
        label: "ROI",
        needs: Needs::Tenant,
    },
    NavItem {
        href: "/console/sessions",
        label: "Sessions",
        needs: Needs::Anyone,
    },
];

/// What every signed-in page shows around its content.
#[derive(Debug)]
pub struct Layout {
    /// The page title.
    pub title: String,
    /// The navigation entry it belongs to.
    pub active: &'static str,
    /// Who is signed in.
    pub who: String,
    /// With which role.
    pub role: &'static str,
    /// In which tenant.
    pub tenant: String,
    /// The session's CSRF token, for forms and htmx.
    pub csrf: String,
    /// Whether this person may change things (not an auditor).
    pub can_write: bool,
    /// Whether this person is a platform operator.
    pub platform: bool,
    /// Whether this person may read the audit log.
    pub audit: bool,
    /// Whether this person sees only their own agents (the `owner` role).
    pub scoped: bool,
}

impl Layout {
    /// The layout of a page titled `title` under navigation entry `active`.
    pub fn new(v: &Viewer, title: impl Into<String>, active: &'static str) -> Self {
        use idv_core::admin_token::Permission;
        Self {
            title: title.into(),
            active,
            who: v.session.display_name.clone(),
            role: v.caller.principal.role.as_str(),
            tenant: v.caller.tenant.name.clone(),
            csrf: v.csrf.clone(),
            can_write: v.caller.principal.may(Permission::WriteRegistry),
            platform: v.caller.principal.may(Permission::ManagePlatform),
            audit: v.caller.principal.may(Permission::ReadAudit),
            scoped: v.caller.owner_scope.is_some(),
        }
    }

    /// The navigation, for the template: what this person may use.
    pub fn nav(&self) -> Vec<&'static NavItem> {
        NAV.iter()
            .filter(|i| match i.needs {
                Needs::Anyone => true,
                Needs::Tenant => !self.scoped,
                Needs::Audit => self.audit,
                Needs::Platform => self.platform,
            })
            .collect()
    }
}

/// The trimmed `(name, value)` pairs of a query string.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
        .collect()
}

/// A query string of the non-empty `fields`, for links that keep a search.
pub fn query_string(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `s` percent-encoded for a query string.
pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An id from a page's path; one that is not an id names nothing: 404
/// "no such `what`".
pub fn path_id(s: &str, what: &str) -> Result<uuid::Uuid, ConsoleError> {
    s.parse()
        .map_err(|_| ConsoleError::Refused(axum::http::StatusCode::NOT_FOUND, format!("no such {what}")))
}

/// Renders a template as a page.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    status: u16,
    title: String,
    detail: String,
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: to the sign-in page.
    SignIn,
    /// A use case refused or failed.
    App(AppError),
    /// The request itself is wrong (a bad form, a missing CSRF token).
    Refused(StatusCode, String),
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        ConsoleError::App(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            ConsoleError::SignIn => return Redirect::to("/console/login").into_response(),
            ConsoleError::App(e) => {
                let api = ApiError::from(e);
                if let Some(internal) = api.internal_detail() {
                    tracing::error!(request_id = %crate::app::request::id(), error = %internal, "internal error");
                }
                (api.status(), api.title().to_owned(), api.detail().to_owned())
            }
            ConsoleError::Refused(status, detail) => (
                status,
                status.canonical_reason().unwrap_or("Refused").to_owned(),
                detail,
            ),
        };
        let mut res = render(&ErrorPage {
            status: status.as_u16(),
            title,
            detail,
        });
        *res.status_mut() = status;
        res
    }
}

/// The headers every console response carries.
async fn harden(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
