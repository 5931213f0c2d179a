//! The admin API's JSON request bodies (idv-api), as `serde_json` reads them
//! from the wire: parsing never panics; whatever parses serializes and parses
//! again to the same thing (so the CLI and the server agree); a parsed
//! `AgentCreate`, turned into a registration the way the server does, is
//! accepted by `NewAgent::into_agent` only when every documented rule holds.
#![no_main]

use idv_api::{
    AdminTokenCreate, AgentBulkCreate, AgentCreate, AgentPatch, DurationValue, ParentRef, TenantCreate,
    TransitionRequest,
};
use idv_core::Timestamp;
use idv_core::agent::{Environment, NewAgent, Parent};
use idv_fuzz::{oracle, small_id};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Parses `data` as `T`; if it parses, checks the serialize/parse round trip.
fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let v: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&v).expect("serializes");
    let again: T = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{} does not parse back: {e}", String::from_utf8_lossy(&json)));
    assert_eq!(
        serde_json::to_value(&v).expect("value"),
        serde_json::to_value(&again).expect("value"),
        "{}",
        String::from_utf8_lossy(&json)
    );
    Some(v)
}

/// `AgentCreate` to a registration, as `idv-server`'s `http::agents::new_agent`
/// does (`None`: the server answers 422 before validation).
fn to_new_agent(c: AgentCreate) -> Option<NewAgent> {
    let environment = match c.environment.as_deref() {
        None => None,
        Some(e) => Some(e.parse::<Environment>().ok()?),
    };
    let parent = match c.parent {
        None => None,
        Some(ParentRef { type_, id }) => Some(match type_.as_str() {
            "agent" => Parent::Agent(Uuid::parse_str(&id).ok()?),
            "human" => Parent::Human(id),
            _ => return None,
        }),
    };
    let ttl_seconds = match c.ttl {
        None => None,
        Some(DurationValue::Seconds(s)) => Some(s),
        Some(DurationValue::Text(t)) => Some(idv_core::duration::parse_seconds(&t).ok()?),
    };
    Some(NewAgent {
        name: c.name,
        owner: c.owner,
        purpose: c.purpose,
        environment,
        team: c.team,
        labels: c.labels,
        capabilities: c.capabilities,
        class: c.class,
        parent,
        depends_on: c.depends_on,
        grants: idv_core::grant::Grants {
            scopes: c.allowed_scopes,
            resources: c.allowed_resources,
            authorization_details_types: c.authorization_details_types,
        },
        ttl_seconds,
    })
}

fn register(c: AgentCreate) {
    let Some(spec) = to_new_agent(c) else { return };
    let id = small_id(0);
    let got = spec
        .clone()
        .into_agent(id, small_id(1), Timestamp::from_micros(0), "fuzz");
    assert_eq!(got.is_ok(), oracle::new_agent(&spec, id), "{spec:#?} -> {got:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Some(c) = round_trip::<AgentCreate>(body) {
                register(c);
            }
        }
        1 => {
            if let Some(b) = round_trip::<AgentBulkCreate>(body) {
                b.agents.into_iter().for_each(register);
            }
        }
        2 => {
            if let Some(p) = round_trip::<AgentPatch>(body) {
                // Absent and `null` stay distinct (JSON merge patch).
                let json = serde_json::to_value(&p).expect("value");
                let sent: serde_json::Value = serde_json::from_slice(body).expect("it parsed");
                // serde also reads a struct from an array of its fields in
                // order; the server refuses any body that is not an object
                // (http::extract::Json), so only objects matter here.
                let fields = if sent.is_object() {
                    &["environment", "team", "class"][..]
                } else {
                    &[]
                };
                for field in fields.iter().copied() {
                    assert_eq!(json.get(field).is_some(), sent.get(field).is_some(), "{field}");
                }
            }
        }
        3 => {
            round_trip::<TenantCreate>(body);
        }
        4 => {
            if let Some(t) = round_trip::<AdminTokenCreate>(body)
                && let Some(DurationValue::Text(s)) = t.expires_in
            {
                let _ = idv_core::duration::parse_seconds(&s);
            }
        }
        5 => {
            if let Some(t) = round_trip::<TransitionRequest>(body) {
                let _ = idv_core::agent::validate_reason(&t.reason);
            }
        }
        6 => {
            round_trip::<DurationValue>(body);
        }
        _ => {
            round_trip::<ParentRef>(body);
        }
    }
});
