//! Failed authentication: budgets per source address and per claimed client
//! id, and counted audit events for what goes over them.
//!
//! Every refusal of an unauthenticated caller is on the record. Within the
//! budgets ([`rates`], set by `--auth-failure-limit`) each is a full audit event, as
//! before. Past them the caller is answered `429 Too Many Requests` with
//! `Retry-After` (RFC 6585 §4), and the refusal is *counted*: one event per
//! tenant, action, source address and error per [`FLUSH_EVERY`], carrying the
//! count, the first and last instant and a few of the client ids claimed.
//! So a flood of failures cannot turn the audit trail into a disk-filling
//! amplifier, and the trail still says how many there were.
//!
//! Only failures are limited: a request whose credentials are right is
//! served whatever its address or client id did before. Machine secrets are
//! 256-bit random, so guessing is not the threat a lockout would answer, and
//! a lockout would hand anyone a way to shut a legitimate client out (by
//! failing under its client id, or from the same NAT address).
//!
//! Per node and in memory, bounded by [`MAX_KEYS`] keys each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use idv_core::Timestamp;
use idv_core::audit::{Action, Actor, ActorKind, Draft, Outcome, TargetKind};
use idv_core::throttle::{Bucket, Rate};
use idv_store::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;

/// Failed authentications per minute from one source address, by default.
pub const DEFAULT_LIMIT: u32 = 60;

/// The budgets for a limit of `per_minute` failures from one address: a
/// third of it at once; per claimed client id (or admin token prefix) a
/// sixth of it, and a sixth of it at once. By default: 20 at once then one a
/// second per address; 10 at once then one every 6 s per client id.
fn rates(per_minute: u32) -> (Rate, Rate) {
    let per_source = Rate {
        burst: (per_minute / 3).max(1),
        per_minute: per_minute.max(1),
    };
    let per_client = Rate {
        burst: (per_minute / 6).max(1),
        per_minute: (per_minute / 6).max(1),
    };
    (per_source, per_client)
}

/// How often counted refusals are written as events (and at shutdown).
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// Most keys kept per map; past it, budgets already full again are
/// forgotten, and if none is, a new key counts as over budget.
pub const MAX_KEYS: usize = 100_000;
/// Client ids kept as examples in one counted event.
const SAMPLES: usize = 5;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Source(IpAddr),
    Client(Uuid, String),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Group {
    tenant_id: Uuid,
    action: Action,
    target_type: TargetKind,
    source: Option<IpAddr>,
    error: String,
}

#[derive(Debug)]
struct Count {
    n: u64,
    first: Timestamp,
    last: Timestamp,
    samples: Vec<String>,
    last_request_id: Option<String>,
}

/// The node's budgets and counted refusals.
#[derive(Debug)]
pub struct FailedAuth {
    per_source: Rate,
    per_client: Rate,
    buckets: Mutex<HashMap<Key, Bucket>>,
    counted: Mutex<HashMap<Group, Count>>,
    flushed: Mutex<Instant>,
}

impl FailedAuth {
    /// Budgets for `per_minute` failures from one address ([`rates`]).
    pub fn new(per_minute: u32) -> Self {
        let (per_source, per_client) = rates(per_minute);
        FailedAuth {
            per_source,
            per_client,
            buckets: Mutex::default(),
            counted: Mutex::default(),
            flushed: Mutex::new(Instant::now()),
        }
    }
}

impl FailedAuth {
    /// Spends one failure from the budget of `source` and of `client` (in
    /// `tenant_id`); `Some(seconds)` to wait when either is spent.
    pub fn spend(&self, tenant_id: Uuid, client: Option<&str>, source: Option<IpAddr>, now: Timestamp) -> Option<u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = None;
        let keys =
            source
                .map(|ip| (Key::Source(ip), self.per_source))
                .into_iter()
                .chain(client.filter(|c| *c != "-").map(|c| {
                    let c: String = c.chars().take(128).collect();
                    (Key::Client(tenant_id, c), self.per_client)
                }));
        for (key, rate) in keys {
            if !buckets.contains_key(&key) && buckets.len() >= MAX_KEYS {
                buckets.retain(|_, b| !b.is_full(rate, now));
                if buckets.len() >= MAX_KEYS {
                    // INVARIANT: memory stays bounded; a flood of new keys
                    // is slowed down rather than remembered.
                    wait = wait.max(Some(60));
                    continue;
                }
            }
            let b = buckets.entry(key).or_insert_with(|| Bucket::full(rate, now));
            if let Err(secs) = b.spend(rate, now) {
                wait = wait.max(Some(secs.min(3600)));
            }
        }
        wait
    }

    /// Counts a refusal instead of writing its event now.
    pub fn count(&self, draft: &Draft, source: Option<IpAddr>, now: Timestamp) {
        let mut counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut group = Group {
            tenant_id: draft.tenant_id,
            action: draft.action,
            target_type: draft.target_type.clone(),
            source,
            error: draft
                .details
                .get("error")
                .unwrap_or(&Value::Null)
                .as_str()
                .unwrap_or("-")
                .to_owned(),
        };
        if !counted.contains_key(&group) && counted.len() >= MAX_KEYS {
            // Bounded: what does not fit is counted without its address.
            group.source = None;
        }
        let c = counted.entry(group).or_insert_with(|| Count {
            n: 0,
            first: now,
            last: now,
            samples: Vec::new(),
            last_request_id: None,
        });
        c.n += 1;
        c.last = now;
        if c.samples.len() < SAMPLES && !c.samples.contains(&draft.target_id) {
            c.samples.push(draft.target_id.clone());
        }
        c.last_request_id.clone_from(&draft.request_id);
    }

    /// Takes the counted refusals as events, if `force` or [`FLUSH_EVERY`]
    /// has passed since the last time.
    fn take(&self, force: bool) -> Vec<Draft> {
        {
            let mut flushed = self.flushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && flushed.elapsed() < FLUSH_EVERY {
                return Vec::new();
            }
            *flushed = Instant::now();
        }
        let counted = std::mem::take(&mut *self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        counted
            .into_iter()
            .map(|(g, c)| Draft {
                tenant_id: g.tenant_id,
                actor: Actor {
                    kind: ActorKind::Anonymous,
                    name: g.source.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                    token_id: None,
                },
                action: g.action,
                target_type: g.target_type,
                target_id: if c.samples.len() == 1 {
                    c.samples.first().cloned().unwrap_or_else(|| "-".into())
                } else {
                    "-".into()
                },
                outcome: Outcome::Denied,
                reason: Some("too many failed authentications: counted, not recorded one by one".into()),
                request_id: c.last_request_id,
                details: json!({
                    "error": g.error,
                    "aggregated": true,
                    "count": c.n,
                    "first_at": c.first.to_rfc3339(),
                    "last_at": c.last.to_rfc3339(),
                    "source": g.source.map(|ip| ip.to_string()),
                    "claimed_ids": c.samples.into_iter().map(Value::String).collect::<Vec<_>>(),
                }),
            })
            .collect()
    }

    /// Writes the counted refusals as events (every [`FLUSH_EVERY`], or now
    /// if `force`); what cannot be written now is counted again.
    pub async fn flush(state: &AppState, force: bool) {
        for draft in state.failed_auth.take(force) {
            let ctx = Context {
                actor: draft.actor.clone(),
                request_id: draft.request_id.clone(),
                note: None,
            };
            if let Err(e) = state.store.record(draft.clone(), ctx).await {
                tracing::warn!(error = %e, "counted refusals could not be recorded; kept for the next try");
                state.failed_auth.put_back(draft);
            }
        }
    }

    /// Returns an unwritten counted event to the counts.
    fn put_back(&self, draft: Draft) {
        let mut counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let d = &draft.details;
        let group = Group {
            tenant_id: draft.tenant_id,
            action: draft.action,
            target_type: draft.target_type.clone(),
            source: d
                .get("source")
                .unwrap_or(&Value::Null)
                .as_str()
                .and_then(|s| s.parse().ok()),
            error: d
                .get("error")
                .unwrap_or(&Value::Null)
                .as_str()
                .unwrap_or("-")
                .to_owned(),
        };
        let ts = |k: &str| d.get(k).and_then(Value::as_str).and_then(|s| Timestamp::parse(s).ok());
        let (Some(first), Some(last)) = (ts("first_at"), ts("last_at")) else {
            return;
        };
        let c = counted.entry(group).or_insert_with(|| Count {
            n: 0,
            first,
            last,
            samples: Vec::new(),
            last_request_id: draft.request_id.clone(),
        });
        c.n += d.get("count").unwrap_or(&Value::Null).as_u64().unwrap_or(0);
        c.first = c.first.min(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idv_core::audit::TargetType;

    fn draft(target: &str) -> Draft {
        Draft {
            tenant_id: Uuid::nil(),
            actor: Actor {
                kind: ActorKind::Anonymous,
                name: target.into(),
                token_id: None,
            },
            action: Action::TokenIssue,
            target_type: TargetType::Agent.into(),
            target_id: target.into(),
            outcome: Outcome::Denied,
            reason: None,
            request_id: Some("r".into()),
            details: json!({"error": "invalid_client"}),
        }
    }

    #[test]
    fn a_source_over_its_budget_waits_whatever_client_it_names() {
        let f = FailedAuth::new(DEFAULT_LIMIT);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Timestamp::from_micros(0);
        for i in 0..20 {
            assert_eq!(f.spend(Uuid::nil(), Some(&format!("c{i}")), Some(ip), now), None);
        }
        assert_eq!(f.spend(Uuid::nil(), Some("fresh"), Some(ip), now), Some(1));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(f.spend(Uuid::nil(), Some("fresh2"), Some(other), now), None);
    }

    #[test]
    fn a_client_id_over_its_budget_waits_from_any_source() {
        let f = FailedAuth::new(DEFAULT_LIMIT);
        let now = Timestamp::from_micros(0);
        for i in 0..10u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            assert_eq!(f.spend(Uuid::nil(), Some("victim"), Some(ip), now), None);
        }
        assert_eq!(
            f.spend(Uuid::nil(), Some("victim"), Some(IpAddr::from([203, 0, 113, 1])), now),
            Some(6)
        );
    }

    #[test]
    fn counted_refusals_become_one_event_per_group() {
        let f = FailedAuth::new(DEFAULT_LIMIT);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..1000 {
            f.count(&draft(&format!("c{i}")), Some(ip), Timestamp::from_micros(i));
        }
        f.count(&draft("x"), None, Timestamp::from_micros(5));
        let mut events = f.take(true);
        events.sort_by_key(|e| e.details["count"].as_u64());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].details["count"], 1);
        assert_eq!(events[0].target_id, "x");
        let big = &events[1];
        assert_eq!(big.details["count"], 1000);
        assert_eq!(big.details["source"], "192.0.2.1");
        assert_eq!(big.details["claimed_ids"].as_array().unwrap().len(), SAMPLES);
        assert_eq!(big.outcome, Outcome::Denied);
        assert!(f.take(true).is_empty(), "taken once");
        // Put back, it is counted again, with nothing lost.
        f.put_back(events[1].clone());
        f.count(&draft("y"), Some(ip), Timestamp::from_micros(2000));
        assert_eq!(f.take(true)[0].details["count"], 1001);
    }

    #[test]
    fn keys_are_bounded() {
        let f = FailedAuth::new(DEFAULT_LIMIT);
        let now = Timestamp::from_micros(0);
        for i in 0..MAX_KEYS {
            f.spend(Uuid::nil(), Some(&format!("c{i}")), None, now);
        }
        // Every budget was spent once, none is full again: a new key waits.
        assert_eq!(f.spend(Uuid::nil(), Some("one-more"), None, now), Some(60));
        // A minute later they are full again and forgotten.
        let later = Timestamp::from_micros(60_000_000);
        assert_eq!(f.spend(Uuid::nil(), Some("one-more"), None, later), None);
        assert!(f.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
