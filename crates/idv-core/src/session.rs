//! Console sessions: a person signed in to the web console. Server-side and
//! revocable; the browser holds only a random secret whose keyed hash is
//! stored. A session is live until the first of: its absolute expiry, its
//! idle timeout (no request for that long), or someone ending it.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::Timestamp;
use crate::admin_token::Role;
use crate::secret::SecretFormat;

/// The session cookie's secret: recognisable when leaked, like admin
/// tokens, and checked (prefix, length, checksum) before any lookup.
pub const FORMAT: SecretFormat = SecretFormat {
    prefix: "idvs_",
    what: "console session",
};

/// How a person signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Break-glass: an admin token pasted into the sign-in page (first
    /// start, before SSO is configured, or when the IdP is down).
    AdminToken,
    /// OpenID Connect single sign-on at the tenant's IdP.
    Oidc,
}

impl Method {
    /// The storage and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::AdminToken => "admin_token",
            Method::Oidc => "oidc",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin_token" => Ok(Method::AdminToken),
            "oidc" => Ok(Method::Oidc),
            other => Err(format!("unknown sign-in method `{other}`")),
        }
    }
}

/// One console session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its public id (in session lists and audit events; not the secret).
    pub id: Uuid,
    /// The tenant it acts in.
    pub tenant_id: Uuid,
    /// How the person signed in.
    pub method: Method,
    /// Who: the admin token's id, or the IdP's `sub`.
    pub subject: String,
    /// The IdP's issuer (OIDC only).
    pub issuer: Option<String>,
    /// The person's e-mail, if known.
    pub email: Option<String>,
    /// What the console shows as the person's name.
    pub display_name: String,
    /// The role the session acts with.
    pub role: Role,
    /// Whether it may act as a platform operator.
    pub platform: bool,
    /// The admin token it was opened with (break-glass only).
    pub token_id: Option<Uuid>,
    /// The address it was opened from.
    pub source: Option<String>,
    /// The browser's `User-Agent` at sign-in (trimmed).
    pub user_agent: Option<String>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it was last used (kept to within [`TOUCH_EVERY_SECS`]).
    pub last_seen_at: Timestamp,
    /// When it ends whatever happens.
    pub expires_at: Timestamp,
    /// When it was ended, if it was.
    pub ended_at: Option<Timestamp>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Why (`sign_out`, `ended_by_admin`, …).
    pub end_reason: Option<String>,
}

/// How often a session's `last_seen_at` is written at most: the idle
/// timeout is kept to within this, and a busy console does not write on
/// every request.
pub const TOUCH_EVERY_SECS: i64 = 60;

/// The timeouts sessions are opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Ends after this long without a request.
    pub idle_secs: i64,
    /// Ends this long after sign-in whatever happens.
    pub absolute_secs: i64,
}

impl Default for Timeouts {
    /// 30 minutes idle, 12 hours absolute (the common bank setting; NIST SP
    /// 800-63B §7.2 allows 30 minutes idle and 12 hours at AAL2).
    fn default() -> Self {
        Self {
            idle_secs: 30 * 60,
            absolute_secs: 12 * 3600,
        }
    }
}

/// Where a session stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Usable.
    Live,
    /// Unused for longer than the idle timeout.
    Idle,
    /// Past its absolute expiry.
    Expired,
    /// Ended by someone.
    Ended,
}

impl State {
    /// The name shown in lists.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Idle => "idle",
            State::Expired => "expired",
            State::Ended => "ended",
        }
    }
}

impl Session {
    /// Where it stands at `now` under `t`.
    pub fn state(&self, now: Timestamp, t: Timeouts) -> State {
        if self.ended_at.is_some() {
            State::Ended
        } else if now >= self.expires_at {
            State::Expired
        } else if now.as_micros().saturating_sub(self.last_seen_at.as_micros()) >= t.idle_secs.saturating_mul(1_000_000)
        {
            State::Idle
        } else {
            State::Live
        }
    }

    /// Whether a request at `now` should record activity (the last record is
    /// older than [`TOUCH_EVERY_SECS`]).
    pub fn needs_touch(&self, now: Timestamp) -> bool {
        now.as_micros().saturating_sub(self.last_seen_at.as_micros()) >= TOUCH_EVERY_SECS * 1_000_000
    }

    /// The absolute expiry for a session opened at `now`.
    pub fn expiry(now: Timestamp, t: Timeouts) -> Timestamp {
        Timestamp::from_micros(
            now.as_micros()
                .saturating_add(t.absolute_secs.saturating_mul(1_000_000)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    fn session() -> Session {
        let t = Timeouts::default();
        Session {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            method: Method::AdminToken,
            subject: "x".into(),
            issuer: None,
            email: None,
            display_name: "x".into(),
            role: Role::Admin,
            platform: false,
            token_id: None,
            source: None,
            user_agent: None,
            created_at: at(1_000),
            last_seen_at: at(1_000),
            expires_at: Session::expiry(at(1_000), t),
            ended_at: None,
            ended_by: None,
            end_reason: None,
        }
    }

    #[test]
    fn a_session_ends_idle_expired_or_ended() {
        let t = Timeouts::default();
        let mut s = session();
        assert_eq!(s.state(at(1_000 + 60), t), State::Live);
        assert_eq!(s.state(at(1_000 + 30 * 60 - 1), t), State::Live);
        assert_eq!(s.state(at(1_000 + 30 * 60), t), State::Idle);
        // Activity keeps it alive, but not past the absolute expiry.
        s.last_seen_at = at(1_000 + 12 * 3600 - 10);
        assert_eq!(s.state(at(1_000 + 12 * 3600 - 5), t), State::Live);
        assert_eq!(s.state(at(1_000 + 12 * 3600), t), State::Expired);
        s.ended_at = Some(at(1_001));
        assert_eq!(s.state(at(1_002), t), State::Ended);
    }

    #[test]
    fn activity_is_recorded_at_most_once_a_minute() {
        let s = session();
        assert!(!s.needs_touch(at(1_000 + 59)));
        assert!(s.needs_touch(at(1_000 + 60)));
    }

    #[test]
    fn methods_round_trip() {
        for m in [Method::AdminToken, Method::Oidc] {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert!("password".parse::<Method>().is_err());
    }
}
