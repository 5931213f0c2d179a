//! Signing in and out, the session cookie, and the checks every
//! state-changing console request passes.
//!
//! The cookie holds the session's random secret (only its keyed hash is
//! stored): `HttpOnly`, `SameSite=Strict`, `Path=/console`, and when the
//! public URL is https also `Secure` with the `__Host-` name prefix
//! (RFC 6265bis §4.1.3.2, which then requires `Path=/`). It carries no
//! `Max-Age`: it dies with the browser, and the server ends the session at
//! its idle or absolute timeout whatever the browser keeps.
//!
//! CSRF: a state-changing request must carry the session's CSRF token (the
//! `_csrf` form field, or the `X-CSRF-Token` header htmx sends), a keyed
//! hash of the session id compared in constant time, and must not come
//! from another site (`Origin` / `Sec-Fetch-Site`; the sign-in form, which
//! has no session yet, relies on these and `SameSite`).

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use idv_core::session::Session;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::{ConsoleError, render};
use crate::AppState;
use crate::app::{AppError, Caller, sessions, sso};

/// The cookie's name on plain http (`__Host-` needs `Secure`).
const COOKIE: &str = "idv_session";
/// The cookie's name when the public URL is https.
const SECURE_COOKIE: &str = "__Host-idv_session";

fn is_https(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

fn cookie_name(state: &AppState) -> &'static str {
    if is_https(state) { SECURE_COOKIE } else { COOKIE }
}

/// The `Set-Cookie` value that stores `value` (or, `None`, removes it).
fn set_cookie(state: &AppState, value: Option<&str>) -> HeaderValue {
    let (v, expire) = match value {
        Some(v) => (v, ""),
        None => ("", "; Max-Age=0"),
    };
    let attrs = if is_https(state) {
        "; Path=/; Secure; HttpOnly; SameSite=Strict"
    } else {
        "; Path=/console; HttpOnly; SameSite=Strict"
    };
    // The value is our own base62 secret: always a valid header value.
    HeaderValue::from_str(&format!("{}={v}{attrs}{expire}", cookie_name(state)))
        .unwrap_or_else(|_| HeaderValue::from_static("idv_session=; Max-Age=0"))
}

/// The session cookie's value in `headers`, if any.
fn presented(state: &AppState, headers: &HeaderMap) -> Option<String> {
    cookie(headers, cookie_name(state))
}

/// The value of cookie `name` in `headers`, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The signed-in person behind a console request.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// Acting as (the same caller the admin API builds from a token).
    pub caller: Caller,
    /// Their session.
    pub session: Session,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Viewer {
    /// Refuses unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        if bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(ConsoleError::Refused(
                StatusCode::FORBIDDEN,
                "the form is missing its security token or it is stale; reload the page and try again".into(),
            ))
        }
    }
}

fn csrf_token(state: &AppState, s: &Session) -> String {
    idv_core::hex::encode(&state.csrf_hasher.hash(&s.id.to_string()))
}

/// Whether a state-changing request came from another site: `Origin` is
/// not ours, or the browser says it was cross-site (Fetch Metadata).
fn cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_none_or(|o| o == origin_of(&state.public_url));
    let site_ok = headers
        .get("sec-fetch-site")
        .and_then(|s| s.to_str().ok())
        .is_none_or(|s| s == "same-origin" || s == "none");
    !(origin_ok && site_ok)
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(secret) = presented(state, &parts.headers) else {
            return Err(ConsoleError::SignIn);
        };
        let Some((session, caller)) = sessions::resolve(state, &secret).await? else {
            return Err(ConsoleError::SignIn);
        };
        let csrf = csrf_token(state, &session);
        let v = Viewer { caller, session, csrf };
        if !parts.method.is_safe() {
            if cross_site(state, &parts.headers) {
                return Err(ConsoleError::Refused(
                    StatusCode::FORBIDDEN,
                    "cross-site requests are refused".into(),
                ));
            }
            // htmx sends the token as a header; forms as a field, which the
            // handler checks (the body is not read here).
            if let Some(h) = parts.headers.get("x-csrf-token") {
                v.check_csrf(h.to_str().unwrap_or_default())?;
            }
        }
        Ok(v)
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    error: Option<String>,
    /// The tenant whose single sign-on is offered, if it has one.
    sso: Option<String>,
}

/// The tenant a sign-in page is for (`?tenant=`, else the default one).
fn tenant_of(raw: Option<&str>) -> String {
    super::query_pairs(raw)
        .into_iter()
        .find(|(k, v)| k == "tenant" && !v.is_empty())
        .map_or_else(|| idv_core::tenant::DEFAULT_TENANT.to_owned(), |(_, v)| v)
}

async fn login_page_for(state: &AppState, tenant: &str, error: Option<String>) -> Response {
    let sso = sso::available(state, tenant).await.then(|| tenant.to_owned());
    render(&LoginPage { error, sso })
}

/// `GET /console/login` (`?tenant=` picks whose single sign-on to offer).
pub async fn login_page(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    login_page_for(&state, &tenant_of(raw.as_deref()), None).await
}

/// The single sign-on transaction cookie: `Lax`, since the provider sends
/// the browser back with a cross-site navigation that a `Strict` cookie
/// would not ride (OpenID Connect flows need it there).
const OIDC_COOKIE: &str = "idv_oidc";

fn oidc_cookie(state: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if is_https(state) { "; Secure" } else { "" };
    let v = match value {
        Some(v) => format!("{OIDC_COOKIE}={v}; Path=/console/sso; HttpOnly; SameSite=Lax; Max-Age=600{secure}"),
        None => format!("{OIDC_COOKIE}=; Path=/console/sso; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("idv_oidc=; Max-Age=0"))
}

/// `GET /console/sso/start?tenant=`: off to the tenant's identity provider.
pub async fn sso_start(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let tenant = tenant_of(raw.as_deref());
    match sso::start(&state, &tenant).await {
        Ok(start) => {
            let mut res = Redirect::to(&start.location).into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, oidc_cookie(&state, Some(&start.transaction)));
            res
        }
        Err(e) => ConsoleError::App(e).into_response(),
    }
}

/// The page that finishes a sign-in: it sets the session cookie and moves
/// on to the console with a same-site navigation (a redirect would still
/// belong to the provider's cross-site navigation, which a `Strict` cookie
/// does not ride).
#[derive(Template)]
#[template(path = "console/signed_in.html")]
struct SignedIn {
    name: String,
}

/// `GET /console/sso/callback`: back from the provider.
pub async fn sso_callback(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let q = super::query_pairs(raw.as_deref());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let code = match (get("code"), get("error")) {
        (Some(c), None) => Ok(c),
        (_, Some(e)) => Err(format!("{e}: {}", get("error_description").unwrap_or(""))),
        (None, None) => Err("no code came back".to_owned()),
    };
    let transaction = cookie(&headers, OIDC_COOKIE);
    let browser = sessions::Browser {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let outcome = sso::finish(
        &state,
        transaction.as_deref(),
        get("state").unwrap_or(""),
        code,
        browser,
    )
    .await;
    let mut res = match outcome {
        Ok(opened) => {
            let mut res = render(&SignedIn {
                name: opened.session.display_name.clone(),
            });
            res.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&state, Some(&opened.secret)));
            res
        }
        Err(sso::SignInRefused::App(e)) => ConsoleError::App(e).into_response(),
        Err(why) => {
            let mut res = render(&LoginPage {
                error: Some(why.to_string()),
                sso: None,
            });
            *res.status_mut() = StatusCode::FORBIDDEN;
            res
        }
    };
    res.headers_mut().append(header::SET_COOKIE, oidc_cookie(&state, None));
    res
}

/// The break-glass sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /console/login`: break-glass sign-in with an admin token.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if cross_site(&state, &headers) {
        return ConsoleError::Refused(StatusCode::FORBIDDEN, "cross-site requests are refused".into()).into_response();
    }
    let browser = sessions::Browser {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    match sessions::sign_in_with_token(&state, &form.token, browser).await {
        Ok(opened) => {
            let mut res = Redirect::to("/console").into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&state, Some(&opened.secret)));
            res
        }
        Err(e @ (AppError::Unauthenticated(_) | AppError::Forbidden(_) | AppError::Throttled(_))) => {
            let status = match e {
                AppError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                AppError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut res = login_page_for(
                &state,
                idv_core::tenant::DEFAULT_TENANT,
                Some(match e {
                    AppError::Forbidden(_) => "This token is for policy enforcement points, not for people.".into(),
                    other => other.to_string(),
                }),
            )
            .await;
            *res.status_mut() = status;
            res
        }
        Err(e) => ConsoleError::App(e).into_response(),
    }
}

/// After signing out of a single sign-on session: on to the provider's
/// logout.
#[derive(Template)]
#[template(path = "console/signed_out.html")]
struct SignedOut {
    provider_logout: String,
}

/// A form with nothing but the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl CsrfForm {
    /// The token sent.
    pub fn token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/logout`: ends the session; its cookie no longer works.
pub async fn logout(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    sessions::sign_out(&state, &v.caller, &v.session).await?;
    // RP-initiated logout at the provider, when it offers it: a page that
    // moves on there (a redirect from this form post would be held to the
    // `form-action 'self'` policy and stop).
    let mut res = match sso::logout_url(&state, &v.session).await {
        Some(url) => render(&SignedOut { provider_logout: url }),
        None => Redirect::to("/console/login").into_response(),
    };
    res.headers_mut().insert(header::SET_COOKIE, set_cookie(&state, None));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(origin_of("http://127.0.0.1:8700"), "http://127.0.0.1:8700");
        assert_eq!(origin_of("https://idv.bank.example/base"), "https://idv.bank.example");
    }
}
