//! Per-tenant signing key rings: which key signs, which keys are published,
//! and how a ring moves through its lifecycle.
//!
//! A key is `next` from its creation until `activates_at` (published in the
//! JWKS, not yet signing), then `current` (it signs) until a newer key
//! activates, then `retired` (published, not signing) until `publish_until`,
//! the expiry of the last token it can have signed, then `removed` (out of
//! the JWKS; its private half erased, its row kept for audit).
//!
//! Which key signs is a function of time alone ([`signer`]): every node
//! holding the same rows picks the same signer at the same instant, so a next
//! key that was published ahead takes over everywhere at `activates_at`
//! without any node having to hear about it at that moment. The recorded
//! transitions ([`advance`], [`rotate`]) only write down what time already
//! decided, and schedule what comes next ([`next_run`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Timestamp;

/// A stored signing key; the private half is sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Key id (`kid`), stable for the key's life.
    pub kid: String,
    /// Tenant (issuer) it signs for.
    pub tenant_id: Uuid,
    /// JWS algorithm (`EdDSA`, `ES256`).
    pub alg: String,
    /// Public JWK as published.
    pub public_jwk: Value,
    /// The sealed private half (see [`sealing_aad`]); empty once removed.
    #[serde(skip)]
    pub sealed_private: Vec<u8>,
    /// When it was made (and first published).
    pub created_at: Timestamp,
    /// When it starts signing.
    pub activates_at: Timestamp,
    /// When it stopped signing, once recorded.
    pub retired_at: Option<Timestamp>,
    /// Once retired: until when it stays published (the expiry of the last
    /// token it can have signed).
    pub publish_until: Option<Timestamp>,
    /// When it left the JWKS, once recorded.
    pub removed_at: Option<Timestamp>,
}

/// Where a key is in its lifecycle at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signs new tokens.
    Current,
    /// Published, no longer signing.
    Retired,
    /// Out of the JWKS.
    Removed,
}

impl KeyState {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }
}

impl SigningKey {
    /// Whether it is out of the JWKS at `now`.
    pub fn is_removed(&self, now: Timestamp) -> bool {
        self.removed_at.is_some_and(|at| at <= now) || self.publish_until.is_some_and(|until| until <= now)
    }

    /// Whether its public half belongs in the JWKS at `now`.
    pub fn is_published(&self, now: Timestamp) -> bool {
        !self.is_removed(now)
    }

    /// Whether its retirement has been recorded (and has begun) at `now`.
    pub fn is_retired(&self, now: Timestamp) -> bool {
        self.retired_at.is_some_and(|at| at <= now)
    }

    /// Whether it may still come to sign: neither retired nor removed.
    fn is_live(&self, now: Timestamp) -> bool {
        !self.is_retired(now) && !self.is_removed(now)
    }

    /// Whether it is waiting to sign.
    fn is_pending(&self, now: Timestamp) -> bool {
        self.is_live(now) && self.activates_at > now
    }
}

/// The associated data that binds a sealed private key to its tenant and key
/// id: a row copied to another tenant or key id fails to open.
pub fn sealing_aad(tenant_id: Uuid, kid: &str) -> Vec<u8> {
    format!("idv/signing_keys/{tenant_id}/{kid}/private").into_bytes()
}

/// The key that signs at `now`: of the live keys already active, the one
/// that activated last (ties: the newer one).
pub fn signer(keys: &[SigningKey], now: Timestamp) -> Option<&SigningKey> {
    keys.iter()
        .filter(|k| k.is_live(now) && k.activates_at <= now)
        .max_by(|a, b| (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid)))
}

/// The state of `key`, one of `keys`, at `now`. A key superseded by a newer
/// active one whose retirement is not yet recorded is already `retired`: it
/// no longer signs.
pub fn state(key: &SigningKey, keys: &[SigningKey], now: Timestamp) -> KeyState {
    if key.is_removed(now) {
        KeyState::Removed
    } else if key.is_retired(now) {
        KeyState::Retired
    } else if key.activates_at > now {
        KeyState::Next
    } else if signer(keys, now).is_some_and(|s| s.kid == key.kid) {
        KeyState::Current
    } else {
        KeyState::Retired
    }
}

/// How a tenant's keys rotate: the server's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// A key signs this long before the next one takes over; `None`: no
    /// scheduled rotation (manual only).
    pub rotate_every_secs: Option<i64>,
    /// The next key is published this long before it signs.
    pub publish_ahead_secs: i64,
    /// A retired key stays published this long after it stopped signing:
    /// the longest lifetime of any token it can have signed, plus clock skew
    /// and how stale a node's cached ring may be.
    pub publish_after_secs: i64,
}

/// A recorded step of a key's lifecycle; each is one audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Store this new key (published from now on).
    Create(SigningKey),
    /// This key signs from `at` on (its activation, recorded).
    Activate {
        /// The key.
        kid: String,
        /// Since when.
        at: Timestamp,
        /// The key it took over from, if any.
        predecessor: Option<String>,
    },
    /// This key stopped signing at `retired_at`; published until `publish_until`.
    Retire {
        /// The key.
        kid: String,
        /// When it stopped signing.
        retired_at: Timestamp,
        /// When it leaves the JWKS.
        publish_until: Timestamp,
    },
    /// This key left the JWKS at `at`; its private half is erased.
    Remove {
        /// The key.
        kid: String,
        /// When it left.
        at: Timestamp,
        /// Whether it was revoked (compromised) rather than expired.
        revoked: bool,
    },
}

/// A manual rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manual {
    /// Publish a next key now that signs `secs` from now (the current key
    /// keeps signing until then).
    Ahead(i64),
    /// The new key signs at once and every other live key is retired now
    /// (emergency); with `revoke_old` the keys that were signing are removed
    /// from the JWKS at once too, so every token they signed stops verifying.
    Immediate {
        /// Remove the old keys at once (compromise).
        revoke_old: bool,
    },
}

/// Why a manual rotation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// A next key is already published and waiting.
    #[error(
        "key `{kid}` is already published as the next key and signs from {activates_at}; rotate with `immediate` to replace it now"
    )]
    NextPending {
        /// The waiting key.
        kid: String,
        /// When it signs.
        activates_at: String,
    },
}

/// Records what time has done to `keys` and what the schedule asks for at
/// `now`: superseded keys retired, expired retired keys removed, a first key
/// (or a replacement when none signs) made from `candidate` active at once,
/// and, when rotation is due, `candidate` published as the next key
/// `publish_ahead` before it takes over. `candidate` is used only if a key
/// is to be made; its `activates_at` is set here.
pub fn advance(keys: &[SigningKey], now: Timestamp, policy: &KeyPolicy, candidate: SigningKey) -> Vec<Change> {
    let mut changes = housekeeping(keys, now, policy);
    let mut after = keys.to_vec();
    apply(&mut after, &changes);
    let Some(current) = signer(&after, now) else {
        changes.extend(make_current(candidate, None, now));
        return changes;
    };
    if let Some(every) = policy.rotate_every_secs
        && !after.iter().any(|k| k.is_pending(now))
    {
        let takes_over = current.activates_at.plus_secs(every);
        if now >= takes_over.plus_secs(-policy.publish_ahead_secs) {
            let activates_at = takes_over.max(now.plus_secs(policy.publish_ahead_secs));
            changes.push(Change::Create(SigningKey {
                activates_at,
                ..candidate
            }));
        }
    }
    changes
}

/// A manual rotation at `now` with `candidate` as the new key (after the
/// same housekeeping as [`advance`]).
pub fn rotate(
    keys: &[SigningKey],
    now: Timestamp,
    policy: &KeyPolicy,
    manual: Manual,
    candidate: SigningKey,
) -> Result<Vec<Change>, KeyringError> {
    let mut changes = housekeeping(keys, now, policy);
    let mut after = keys.to_vec();
    apply(&mut after, &changes);
    match manual {
        Manual::Ahead(secs) => {
            if let Some(p) = after.iter().find(|k| k.is_pending(now)) {
                return Err(KeyringError::NextPending {
                    kid: p.kid.clone(),
                    activates_at: p.activates_at.to_rfc3339(),
                });
            }
            if signer(&after, now).is_none() {
                // Nothing signs yet: there is nothing to publish ahead of.
                changes.extend(make_current(candidate, None, now));
            } else {
                changes.push(Change::Create(SigningKey {
                    activates_at: now.plus_secs(secs.max(0)),
                    ..candidate
                }));
            }
        }
        Manual::Immediate { revoke_old } => {
            let predecessor = signer(&after, now).map(|k| k.kid.clone());
            for k in after.iter().filter(|k| k.is_live(now)) {
                let signed = k.activates_at <= now;
                let until = if signed && !revoke_old {
                    now.plus_secs(policy.publish_after_secs)
                } else {
                    now
                };
                changes.push(Change::Retire {
                    kid: k.kid.clone(),
                    retired_at: now,
                    publish_until: until,
                });
                if until <= now {
                    changes.push(Change::Remove {
                        kid: k.kid.clone(),
                        at: now,
                        revoked: signed,
                    });
                }
            }
            changes.extend(make_current(candidate, predecessor, now));
        }
    }
    Ok(changes)
}

/// `candidate` made to sign at once; its activation is an event of its own
/// when it takes over from another key (a first key's creation says it all).
fn make_current(candidate: SigningKey, predecessor: Option<String>, now: Timestamp) -> Vec<Change> {
    let kid = candidate.kid.clone();
    let mut changes = vec![Change::Create(SigningKey {
        activates_at: now,
        ..candidate
    })];
    if predecessor.is_some() {
        changes.push(Change::Activate {
            kid,
            at: now,
            predecessor,
        });
    }
    changes
}

/// Retirements of superseded keys (at the activation of the key that took
/// over) and removals of retired keys whose tokens have all expired.
fn housekeeping(keys: &[SigningKey], now: Timestamp, policy: &KeyPolicy) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(current) = signer(keys, now) {
        let superseded: Vec<&SigningKey> = keys
            .iter()
            .filter(|k| k.kid != current.kid && k.is_live(now) && k.activates_at <= now)
            .collect();
        if !superseded.is_empty() {
            changes.push(Change::Activate {
                kid: current.kid.clone(),
                at: current.activates_at,
                predecessor: superseded
                    .iter()
                    .max_by_key(|k| (k.activates_at, k.created_at))
                    .map(|k| k.kid.clone()),
            });
        }
        for k in superseded {
            // It stopped signing when `current` took over, whenever this
            // runs: the rings choose by time.
            changes.push(Change::Retire {
                kid: k.kid.clone(),
                retired_at: current.activates_at,
                publish_until: current.activates_at.plus_secs(policy.publish_after_secs),
            });
        }
    }
    let mut after = keys.to_vec();
    apply(&mut after, &changes);
    for k in &after {
        if k.removed_at.is_none()
            && let Some(until) = k.publish_until
            && until <= now
        {
            changes.push(Change::Remove {
                kid: k.kid.clone(),
                at: until,
                revoked: false,
            });
        }
    }
    changes
}

/// Applies `changes` to `keys` (what the store does to its rows).
pub fn apply(keys: &mut Vec<SigningKey>, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Create(k) => keys.push(k.clone()),
            Change::Activate { .. } => {}
            Change::Retire {
                kid,
                retired_at,
                publish_until,
            } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.retired_at = Some(*retired_at);
                    k.publish_until = Some(*publish_until);
                }
            }
            Change::Remove { kid, at, .. } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.removed_at = Some(*at);
                    k.sealed_private.clear();
                }
            }
        }
    }
}

/// When the ring next needs [`advance`]: a next key's activation (to record
/// it), a retired key's removal, or the next scheduled publication. `None`
/// when nothing is pending and rotation is off.
pub fn next_run(keys: &[SigningKey], now: Timestamp, policy: &KeyPolicy) -> Option<Timestamp> {
    let current = signer(keys, now);
    let mut due: Vec<Timestamp> = Vec::new();
    for k in keys {
        if k.is_pending(now) {
            due.push(k.activates_at);
        } else if k.is_live(now) && current.is_some_and(|c| c.kid != k.kid) {
            due.push(now);
        }
        if k.removed_at.is_none()
            && let Some(until) = k.publish_until
        {
            due.push(until);
        }
    }
    if let (Some(every), Some(c)) = (policy.rotate_every_secs, current)
        && !keys.iter().any(|k| k.is_pending(now))
    {
        due.push(c.activates_at.plus_secs(every).plus_secs(-policy.publish_ahead_secs));
    }
    if current.is_none() && !keys.is_empty() {
        due.push(now);
    }
    due.into_iter().min().map(|t| t.max(now))
}

/// The earliest instant after `now` at which [`signer`] or the set of
/// published keys can change by time alone: a cached ring must be looked at
/// again by then.
pub fn next_transition(keys: &[SigningKey], now: Timestamp) -> Option<Timestamp> {
    keys.iter()
        .filter(|k| k.is_published(now))
        .flat_map(|k| [Some(k.activates_at), k.retired_at, k.publish_until, k.removed_at])
        .flatten()
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_micros(secs * 1_000_000)
    }

    fn candidate(kid: &str, now: i64) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            tenant_id: Uuid::nil(),
            alg: "EdDSA".into(),
            public_jwk: Value::Null,
            sealed_private: vec![1, 2, 3],
            created_at: at(now),
            activates_at: at(now),
            retired_at: None,
            publish_until: None,
            removed_at: None,
        }
    }

    fn policy() -> KeyPolicy {
        KeyPolicy {
            rotate_every_secs: Some(30 * DAY),
            publish_ahead_secs: HOUR,
            publish_after_secs: HOUR + 120,
        }
    }

    fn step(keys: &mut Vec<SigningKey>, now: i64, kid: &str) -> Vec<Change> {
        let changes = advance(keys, at(now), &policy(), candidate(kid, now));
        apply(keys, &changes);
        changes
    }

    fn states(keys: &[SigningKey], now: i64) -> Vec<(&str, KeyState)> {
        keys.iter().map(|k| (k.kid.as_str(), state(k, keys, at(now)))).collect()
    }

    #[test]
    fn scheduled_rotation_publishes_ahead_then_takes_over_then_retires_and_removes() {
        let p = policy();
        let mut keys = Vec::new();
        // First use: a key that signs at once.
        let c = step(&mut keys, 0, "a");
        assert!(matches!(&c[..], [Change::Create(k)] if k.activates_at == at(0)));
        assert_eq!(states(&keys, 0), vec![("a", KeyState::Current)]);
        let due = 30 * DAY - HOUR;
        assert_eq!(next_run(&keys, at(0), &p), Some(at(due)));
        // Nothing to do before the publication is due.
        assert!(step(&mut keys, due - 1, "x").is_empty());
        // Published an hour ahead.
        let c = step(&mut keys, due, "b");
        assert!(matches!(&c[..], [Change::Create(k)] if k.activates_at == at(30 * DAY)));
        assert_eq!(
            states(&keys, due),
            vec![("a", KeyState::Current), ("b", KeyState::Next)]
        );
        assert_eq!(signer(&keys, at(30 * DAY - 1)).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(next_run(&keys, at(due), &p), Some(at(30 * DAY)));
        // At activation `b` signs, by time alone, before anything is recorded.
        assert_eq!(signer(&keys, at(30 * DAY)).map(|k| k.kid.as_str()), Some("b"));
        assert_eq!(
            states(&keys, 30 * DAY),
            vec![("a", KeyState::Retired), ("b", KeyState::Current)]
        );
        // Recorded late: still retired at the activation.
        let c = step(&mut keys, 30 * DAY + 5, "x");
        assert_eq!(
            c,
            vec![
                Change::Activate {
                    kid: "b".into(),
                    at: at(30 * DAY),
                    predecessor: Some("a".into())
                },
                Change::Retire {
                    kid: "a".into(),
                    retired_at: at(30 * DAY),
                    publish_until: at(30 * DAY + HOUR + 120)
                },
            ]
        );
        assert_eq!(next_run(&keys, at(30 * DAY + 5), &p), Some(at(30 * DAY + HOUR + 120)));
        assert!(keys[0].is_published(at(30 * DAY + HOUR + 119)));
        assert!(!keys[0].is_published(at(30 * DAY + HOUR + 120)));
        let c = step(&mut keys, 30 * DAY + HOUR + 120, "x");
        assert_eq!(
            c,
            vec![Change::Remove {
                kid: "a".into(),
                at: at(30 * DAY + HOUR + 120),
                revoked: false
            }]
        );
        assert!(keys[0].sealed_private.is_empty(), "the private half is erased");
        assert_eq!(next_run(&keys, at(31 * DAY), &p), Some(at(60 * DAY - HOUR)));
        assert_ne!(sealing_aad(Uuid::nil(), "a"), sealing_aad(Uuid::nil(), "b"));
    }

    #[test]
    fn a_late_job_still_publishes_a_full_lead_ahead() {
        let mut keys = Vec::new();
        step(&mut keys, 0, "a");
        let late = 40 * DAY;
        let c = step(&mut keys, late, "b");
        assert!(matches!(&c[..], [Change::Create(k)] if k.activates_at == at(late + HOUR)));
    }

    #[test]
    fn manual_rotations() {
        let p = policy();
        let mut keys = Vec::new();
        step(&mut keys, 0, "a");
        // Ahead: published now, signs later; a second one is refused.
        let c = rotate(&keys, at(10), &p, Manual::Ahead(600), candidate("b", 10)).unwrap();
        apply(&mut keys, &c);
        assert_eq!(keys[1].activates_at, at(610));
        let err = rotate(&keys, at(20), &p, Manual::Ahead(600), candidate("c", 20)).unwrap_err();
        assert!(matches!(err, KeyringError::NextPending { ref kid, .. } if kid == "b"));
        // Immediate: `c` signs now; `a` retired and published on; the
        // never-used `b` leaves at once.
        let c = rotate(
            &keys,
            at(20),
            &p,
            Manual::Immediate { revoke_old: false },
            candidate("c", 20),
        )
        .unwrap();
        apply(&mut keys, &c);
        assert_eq!(
            states(&keys, 20),
            vec![
                ("a", KeyState::Retired),
                ("b", KeyState::Removed),
                ("c", KeyState::Current)
            ]
        );
        assert!(c.contains(&Change::Remove {
            kid: "b".into(),
            at: at(20),
            revoked: false
        }));
        assert_eq!(keys[0].publish_until, Some(at(20 + HOUR + 120)));
        // Compromise: `c` is out of the JWKS at once, `a` (retired earlier) stays.
        let c = rotate(
            &keys,
            at(30),
            &p,
            Manual::Immediate { revoke_old: true },
            candidate("d", 30),
        )
        .unwrap();
        apply(&mut keys, &c);
        assert!(c.contains(&Change::Remove {
            kid: "c".into(),
            at: at(30),
            revoked: true
        }));
        assert_eq!(
            states(&keys, 30),
            vec![
                ("a", KeyState::Retired),
                ("b", KeyState::Removed),
                ("c", KeyState::Removed),
                ("d", KeyState::Current)
            ]
        );
        assert_eq!(next_transition(&keys, at(30)), Some(at(20 + HOUR + 120)));
    }

    #[test]
    fn without_scheduled_rotation_only_pending_work_is_scheduled() {
        let p = KeyPolicy {
            rotate_every_secs: None,
            ..policy()
        };
        let mut keys = Vec::new();
        let c = advance(&keys, at(0), &p, candidate("a", 0));
        apply(&mut keys, &c);
        assert_eq!(next_run(&keys, at(0), &p), None);
        assert!(advance(&keys, at(100 * DAY), &p, candidate("b", 100 * DAY)).is_empty());
    }

    /// One step of a simulated deployment.
    #[derive(Clone, Debug)]
    enum Op {
        /// Time passes (seconds).
        Wait(i64),
        /// The job runs (it may be late or early).
        Job,
        /// A token is issued with this lifetime (seconds, at most an hour).
        Issue(i64),
        /// Manual rotation with a lead (seconds).
        Ahead(i64),
        /// Emergency rotation.
        Immediate,
        /// Compromise: rotate and remove the old key at once.
        Revoke,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..(40 * DAY)).prop_map(Op::Wait),
            3 => (1..(2 * HOUR)).prop_map(Op::Wait),
            4 => Just(Op::Job),
            4 => (1..=HOUR).prop_map(Op::Issue),
            1 => (0..(2 * HOUR)).prop_map(Op::Ahead),
            1 => Just(Op::Immediate),
            1 => Just(Op::Revoke),
        ]
    }

    proptest! {
        /// Once any key exists exactly one signs, and it is published; every
        /// key that signed a token still valid is published (unless it was
        /// revoked); a key signs only after it was published (a full lead
        /// ahead when scheduled); states only move forward; and the job's
        /// schedule never lets recorded work fall behind by more than it is late.
        #[test]
        fn lifecycle_invariants(ops in proptest::collection::vec(op(), 1..60), every in prop::option::of(2 * HOUR..(60 * DAY))) {
            let p = KeyPolicy { rotate_every_secs: every, ..policy() };
            let mut keys: Vec<SigningKey> = Vec::new();
            let mut now = 0_i64;
            let mut n = 0;
            // (kid, expires)
            let mut tokens: Vec<(String, i64)> = Vec::new();
            let mut revoked: Vec<String> = Vec::new();
            let mut seen: std::collections::HashMap<String, KeyState> = Default::default();
            let mut scheduled: Vec<String> = Vec::new();
            for op in ops {
                n += 1;
                let kid = format!("k{n}");
                match op {
                    Op::Wait(s) => now += s,
                    Op::Job => {
                        let c = advance(&keys, at(now), &p, candidate(&kid, now));
                        if c.iter().any(|c| matches!(c, Change::Create(k) if k.activates_at > at(now))) {
                            scheduled.push(kid.clone());
                        }
                        apply(&mut keys, &c);
                        // Right after a run nothing is left to do, and the
                        // next run is in the future.
                        prop_assert!(advance(&keys, at(now), &p, candidate("z", now)).is_empty());
                        if let Some(t) = next_run(&keys, at(now), &p) {
                            prop_assert!(t > at(now), "{t:?} {keys:?}");
                        }
                    }
                    Op::Issue(ttl) => {
                        // Issuing makes the first key when none exists (first use).
                        if signer(&keys, at(now)).is_none() {
                            let c = advance(&keys, at(now), &p, candidate(&kid, now));
                            apply(&mut keys, &c);
                        }
                        let s = signer(&keys, at(now)).map(|k| k.kid.clone());
                        prop_assert!(s.is_some());
                        tokens.push((s.unwrap_or_default(), now + ttl));
                    }
                    Op::Ahead(secs) => {
                        if let Ok(c) = rotate(&keys, at(now), &p, Manual::Ahead(secs), candidate(&kid, now)) {
                            apply(&mut keys, &c);
                        }
                    }
                    Op::Immediate | Op::Revoke => {
                        let revoke_old = matches!(op, Op::Revoke);
                        if revoke_old && let Some(s) = signer(&keys, at(now)) {
                            revoked.push(s.kid.clone());
                            // Superseded keys that have not been recorded as
                            // retired are revoked too (they signed recently).
                            for k in keys.iter().filter(|k| k.is_live(at(now)) && k.activates_at <= at(now)) {
                                revoked.push(k.kid.clone());
                            }
                        }
                        let c = rotate(&keys, at(now), &p, Manual::Immediate { revoke_old }, candidate(&kid, now)).unwrap();
                        apply(&mut keys, &c);
                    }
                }
                let t = at(now);
                // Exactly one signer once any key exists, and it is published.
                let signers: Vec<&SigningKey> = keys.iter().filter(|k| state(k, &keys, t) == KeyState::Current).collect();
                if !keys.is_empty() {
                    prop_assert_eq!(signers.len(), 1, "{:?}", keys);
                    prop_assert!(signers[0].is_published(t));
                    prop_assert_eq!(signer(&keys, t).map(|k| &k.kid), Some(&signers[0].kid));
                }
                // Every key that signed a token still valid is published.
                for (kid, exp) in &tokens {
                    if *exp > now && !revoked.contains(kid) {
                        let k = keys.iter().find(|k| &k.kid == kid);
                        prop_assert!(k.is_some_and(|k| k.is_published(t)), "{kid} signed a token valid until {exp}, now {now}: {keys:?}");
                    }
                }
                for k in &keys {
                    // A key signs only after it was published; a scheduled
                    // one a full lead ahead.
                    prop_assert!(k.activates_at >= k.created_at);
                    if scheduled.contains(&k.kid) {
                        prop_assert!(k.activates_at.as_micros() - k.created_at.as_micros() >= p.publish_ahead_secs * 1_000_000);
                    }
                    // States only move forward.
                    let s = state(k, &keys, t);
                    if let Some(before) = seen.insert(k.kid.clone(), s) {
                        prop_assert!(before <= s, "{} went from {:?} to {:?}", k.kid, before, s);
                    }
                    if s == KeyState::Removed {
                        prop_assert!(!k.is_published(t));
                    }
                }
            }
        }
    }
}
