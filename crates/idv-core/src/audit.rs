//! Audit events and the SHA-256 hash chain that makes the log tamper-evident.
//!
//! Each event's hash is `SHA-256(prev_hash ‖ canonical(event))`, where
//! `canonical` is a length-prefixed binary encoding of every field in a fixed
//! order (the `details` JSON in canonical form: sorted keys, no whitespace).
//! The first event's `prev_hash` is 32 zero bytes. Changing, removing or
//! reordering any stored event breaks the chain at that event.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Timestamp;

mod vocabulary;

pub use vocabulary::{Action, TargetKind, TargetType, UnknownName};

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// What kind of party acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An admin API token.
    AdminToken,
    /// IdentityVault itself (background jobs, bootstrap).
    System,
    /// An agent authenticated with one of its credentials (`name` is the
    /// agent id, `token_id` the credential id).
    Agent,
    /// A caller that did not authenticate (`name` is who it claimed to be).
    Anonymous,
    /// A person signed in to the console through their identity provider
    /// (`name` is their e-mail or subject, `token_id` the console session;
    /// the event's `details.request.person` holds the provider's issuer and
    /// subject).
    Person,
}

impl ActorKind {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::AdminToken => "admin_token",
            ActorKind::System => "system",
            ActorKind::Agent => "agent",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Person => "person",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin_token" => Some(ActorKind::AdminToken),
            "system" => Some(ActorKind::System),
            "agent" => Some(ActorKind::Agent),
            "anonymous" => Some(ActorKind::Anonymous),
            "person" => Some(ActorKind::Person),
            _ => None,
        }
    }
}

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// What kind of party.
    pub kind: ActorKind,
    /// Who: the token's name, or the system component.
    pub name: String,
    /// Which token, when a token was used.
    pub token_id: Option<Uuid>,
}

impl Actor {
    /// IdentityVault itself, in the named component.
    pub fn system(component: &str) -> Self {
        Actor {
            kind: ActorKind::System,
            name: component.to_owned(),
            token_id: None,
        }
    }

    /// A short form for `*_by` fields: `admin_token:<id>`, `agent:<id>` or
    /// `system:<component>`.
    pub fn reference(&self) -> String {
        match (self.kind, self.token_id) {
            (ActorKind::AdminToken, Some(id)) => format!("admin_token:{id}"),
            (kind, _) => format!("{}:{}", kind.as_str(), self.name),
        }
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused by a rule of the domain (invalid transition, conflict…).
    Failure,
    /// Refused because the caller may not do it.
    Denied,
}

impl Outcome {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event before it is placed in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The tenant whose data it concerns.
    pub tenant_id: Uuid,
    /// Who acted.
    pub actor: Actor,
    /// What was done, e.g. `agent.create`.
    pub action: Action,
    /// The kind of thing acted on, e.g. `agent`.
    pub target_type: TargetKind,
    /// Which one.
    pub target_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// Anything else worth keeping. Never a secret.
    pub details: Value,
}

/// An event in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Unique id.
    pub id: Uuid,
    /// When it was recorded.
    pub time: Timestamp,
    /// See [`Draft::tenant_id`].
    pub tenant_id: Uuid,
    /// See [`Draft::actor`].
    pub actor: Actor,
    /// See [`Draft::action`].
    pub action: String,
    /// See [`Draft::target_type`].
    pub target_type: String,
    /// See [`Draft::target_id`].
    pub target_id: String,
    /// See [`Draft::outcome`].
    pub outcome: Outcome,
    /// See [`Draft::reason`].
    pub reason: Option<String>,
    /// See [`Draft::request_id`].
    pub request_id: Option<String>,
    /// See [`Draft::details`].
    pub details: Value,
    /// The previous event's hash.
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// This event's hash.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        crate::hex::decode::<32>(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// JSON in canonical form: object keys sorted by their UTF-8 bytes, no
/// insignificant whitespace, strings escaped as serde_json does. Independent
/// of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> String {
    // Infallible: every key of a `Value` is a string and every number finite.
    serde_json::to_string(&Canonical(v)).unwrap_or_default()
}

/// Serializes a value with its objects' keys sorted, straight into the
/// output (no intermediate strings per key or scalar).
struct Canonical<'a>(&'a Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, &Canonical(v))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Canonical(item))?;
                }
                seq.end()
            }
            scalar => scalar.serialize(s),
        }
    }
}

struct Encoder(Vec<u8>);

impl Encoder {
    fn bytes(&mut self, b: &[u8]) {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&[u8]>) {
        match s {
            None => self.0.push(0),
            Some(b) => {
                self.0.push(1);
                self.bytes(b);
            }
        }
    }
}

impl Event {
    /// The canonical encoding hashed into the chain (everything but the hashes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder(Vec::with_capacity(256));
        e.str("idv-audit-v1");
        e.0.extend_from_slice(&self.seq.to_be_bytes());
        e.0.extend_from_slice(self.id.as_bytes());
        e.0.extend_from_slice(&self.time.as_micros().to_be_bytes());
        e.0.extend_from_slice(self.tenant_id.as_bytes());
        e.str(self.actor.kind.as_str());
        e.str(&self.actor.name);
        e.opt(self.actor.token_id.as_ref().map(|t| t.as_bytes().as_slice()));
        e.str(&self.action);
        e.str(&self.target_type);
        e.str(&self.target_id);
        e.str(self.outcome.as_str());
        e.opt(self.reason.as_deref().map(str::as_bytes));
        e.opt(self.request_id.as_deref().map(str::as_bytes));
        e.str(&canonical_json(&self.details));
        e.0
    }

    /// `SHA-256(prev_hash ‖ canonical_bytes)`.
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.prev_hash);
        h.update(self.canonical_bytes());
        h.finalize().into()
    }
}

/// The head of the chain: where the next event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The last event's `seq` (0 when empty).
    pub seq: i64,
    /// The last event's hash ([`GENESIS`] when empty).
    pub hash: [u8; 32],
}

impl Head {
    /// The head of an empty chain.
    pub const EMPTY: Head = Head { seq: 0, hash: GENESIS };

    /// Places `draft` after this head and moves the head to it.
    pub fn append(&mut self, draft: Draft, id: Uuid, time: Timestamp) -> Event {
        let mut ev = Event {
            seq: self.seq + 1,
            id,
            time,
            tenant_id: draft.tenant_id,
            actor: draft.actor,
            action: draft.action.as_str().to_owned(),
            target_type: draft.target_type.as_str().to_owned(),
            target_id: draft.target_id,
            outcome: draft.outcome,
            reason: draft.reason,
            request_id: draft.request_id,
            details: draft.details,
            prev_hash: self.hash,
            hash: GENESIS,
        };
        ev.hash = ev.compute_hash();
        self.seq = ev.seq;
        self.hash = ev.hash;
        ev
    }
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("audit chain broken at event {seq}: {problem}")]
pub struct Break {
    /// The first event that does not verify.
    pub seq: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// Checks events one at a time, in `seq` order, from the start of the chain.
#[derive(Debug)]
pub struct Verifier {
    head: Head,
}

impl Default for Verifier {
    fn default() -> Self {
        Self { head: Head::EMPTY }
    }
}

impl Verifier {
    /// Checks the next event; on success it becomes the head.
    pub fn push(&mut self, ev: &Event) -> Result<(), Break> {
        let fail = |problem: &str| Break {
            seq: ev.seq,
            problem: problem.to_owned(),
        };
        if ev.seq != self.head.seq + 1 {
            return Err(Break {
                seq: self.head.seq + 1,
                problem: format!("event {} is missing (next stored is {})", self.head.seq + 1, ev.seq),
            });
        }
        if ev.prev_hash != self.head.hash {
            return Err(fail("prev_hash does not match the previous event's hash"));
        }
        if ev.compute_hash() != ev.hash {
            return Err(fail("content does not match its hash (the event was altered)"));
        }
        self.head = Head {
            seq: ev.seq,
            hash: ev.hash,
        };
        Ok(())
    }

    /// The last verified event.
    pub fn head(&self) -> Head {
        self.head
    }
}

/// A walk of the whole chain against the head recorded when it started:
/// every event verified in order, the recorded head's hash found at its
/// place (a rewritten tail whose links agree again is caught), and no event
/// missing at the end (a cut tail is caught). Fed a page at a time, by the
/// CLI (from the database or the API) and by the server.
#[derive(Debug)]
pub struct ChainWalk {
    verifier: Verifier,
    head: Head,
    broken: Option<Break>,
}

impl ChainWalk {
    /// A walk up to the recorded `head`.
    pub fn new(head: Head) -> Self {
        Self {
            verifier: Verifier::default(),
            head,
            broken: None,
        }
    }

    /// Checks the next page of events in chain order; `false` once the
    /// chain is found broken (read no further).
    pub fn push(&mut self, events: &[Event]) -> bool {
        if self.broken.is_some() {
            return false;
        }
        for ev in events {
            if let Err(b) = self.verifier.push(ev) {
                self.broken = Some(b);
                return false;
            }
            if ev.seq == self.head.seq && ev.hash != self.head.hash {
                self.broken = Some(Break {
                    seq: ev.seq,
                    problem: "hash differs from the chain head recorded".into(),
                });
                return false;
            }
        }
        true
    }

    /// The last event verified so far.
    pub fn verified(&self) -> Head {
        self.verifier.head()
    }

    /// The last event verified, and the first broken link if any (events
    /// missing before the recorded head included).
    pub fn finish(self) -> (Head, Option<Break>) {
        let end = self.verifier.head();
        let broken = self.broken.or_else(|| {
            (end.seq < self.head.seq).then(|| Break {
                seq: end.seq + 1,
                problem: format!(
                    "the chain ends at event {} but its head is event {} (events were removed)",
                    end.seq, self.head.seq
                ),
            })
        });
        (end, broken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn draft(i: usize) -> Draft {
        Draft {
            tenant_id: Uuid::nil(),
            actor: Actor::system("test"),
            action: Action::AgentCreate,
            target_type: TargetType::Agent.into(),
            target_id: i.to_string(),
            outcome: Outcome::Success,
            reason: i.is_multiple_of(2).then(|| "because".into()),
            request_id: None,
            details: json!({"b": 1, "a": [i, "x"]}),
        }
    }

    fn chain(n: usize) -> Vec<Event> {
        let mut head = Head::EMPTY;
        (0..n)
            .map(|i| head.append(draft(i), Uuid::from_u128(i as u128), Timestamp::from_micros(i as i64)))
            .collect()
    }

    fn verify(events: &[Event]) -> Result<(), Break> {
        let mut v = Verifier::default();
        events.iter().try_for_each(|e| v.push(e))
    }

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": {"d": 1, "c": "é\n"}, "a": null})),
            r#"{"a":null,"b":{"c":"é\n","d":1}}"#
        );
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(10)), Ok(()));
    }

    #[test]
    fn serde_round_trip_keeps_hash() {
        let events = chain(3);
        let text = serde_json::to_string(&events).unwrap();
        let back: Vec<Event> = serde_json::from_str(&text).unwrap();
        assert_eq!(verify(&back), Ok(()));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,8}|[\"\\\\\u{0}-\u{1f}é€]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("\\PC{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn plain_canonical(v: &Value) -> String {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let inner: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), plain_canonical(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Value::Array(items) => format!("[{}]", items.iter().map(plain_canonical).collect::<Vec<_>>().join(",")),
            scalar => scalar.to_string(),
        }
    }

    proptest! {
        /// Altering any field of any event is detected at exactly that event.
        #[test]
        fn tampering_is_found_where_it_happened(n in 1usize..30, at in 0usize..30, field in 0u8..5) {
            let at = at % n;
            let mut events = chain(n);
            let ev = &mut events[at];
            match field {
                0 => ev.action.push('x'),
                1 => ev.reason = Some("edited".into()),
                2 => ev.details = json!({"forged": true}),
                3 => ev.time = Timestamp::from_micros(ev.time.as_micros() + 1),
                _ => ev.actor.name.push('!'),
            }
            let err = verify(&events).unwrap_err();
            prop_assert_eq!(err.seq, (at + 1) as i64);
        }

        /// The canonical form is the plain one written out by hand: keys
        /// sorted by bytes at every depth, serde_json's escaping and numbers.
        /// (Events already in chains were hashed with it.)
        #[test]
        fn canonical_json_matches_the_plain_definition(v in json_value()) {
            prop_assert_eq!(canonical_json(&v), plain_canonical(&v));
        }

        /// Deleting an event is detected at the gap.
        #[test]
        fn deletion_is_found(n in 2usize..30, at in 0usize..29) {
            let at = at % (n - 1);
            let mut events = chain(n);
            events.remove(at);
            let err = verify(&events).unwrap_err();
            prop_assert_eq!(err.seq, (at + 1) as i64);
        }
    }

    #[test]
    fn a_walk_catches_a_cut_tail_and_a_rewritten_head() {
        let events = chain(6);
        let head = Head {
            seq: events[5].seq,
            hash: events[5].hash,
        };
        let mut w = ChainWalk::new(head);
        assert!(w.push(&events[..3]) && w.push(&events[3..]));
        assert_eq!(w.finish(), (head, None));
        // The last two events cut off.
        let mut w = ChainWalk::new(head);
        w.push(&events[..4]);
        let (end, broken) = w.finish();
        assert_eq!(end.seq, events[3].seq);
        assert_eq!(broken.unwrap().seq, events[4].seq);
        // A head recorded with another hash than the walked chain's.
        let mut w = ChainWalk::new(Head {
            seq: head.seq,
            hash: [7; 32],
        });
        assert!(!w.push(&events));
        assert!(w.finish().1.unwrap().problem.contains("chain head"));
    }
}
