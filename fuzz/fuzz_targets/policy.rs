//! Cedar policy versions and decisions: `compile` never panics (nor
//! overflows its stack: `idv_policy::shape` bounds nesting first) on
//! arbitrary policy and schema text, every problem it reports has a position
//! inside the text it names; a version that compiles answers arbitrary AuthZEN-style
//! requests (arbitrary JSON context and resource properties) without
//! panicking, and never allows a request whose action it does not declare.
#![no_main]

use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::directory::EntityRef;
use idv_policy::compile::Source;
use idv_policy::{Engine, Inputs, Party, Query, Target, compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `policies \0 schema \0 request-json`
    let mut parts = text.splitn(3, '\0');
    let policies = parts.next().unwrap_or("");
    let schema = parts.next();
    let request = parts.next().unwrap_or("{}");
    let compiled = match compile(policies, schema) {
        Ok(c) => c,
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                let src = match p.source {
                    Source::Policies => policies,
                    Source::Schema => schema.unwrap_or(""),
                    Source::Condition => panic!("a version has no grant condition: {p:?}"),
                };
                if let Some(line) = p.line {
                    assert!(line as usize <= src.lines().count().max(1) + 1, "{p:?}");
                }
            }
            return;
        }
    };
    let engine = Engine::build(Inputs {
        compiled: Arc::new(compiled),
        version: 1,
        roles: &[],
        grants: &[],
        directory: &[],
        now: Timestamp::from_micros(0),
    });
    let Ok(serde_json::Value::Object(req)) = serde_json::from_str::<serde_json::Value>(request) else { return };
    let s = |k: &str| req.get(k).and_then(|v| v.as_str()).unwrap_or("x").to_owned();
    let subject = EntityRef { type_name: s("subject_type"), id: s("subject") };
    let resource = EntityRef { type_name: s("resource_type"), id: s("resource") };
    let action = s("action");
    let empty = serde_json::Map::new();
    let context = req.get("context").and_then(|v| v.as_object()).unwrap_or(&empty);
    let props = req.get("properties").and_then(|v| v.as_object());
    let q = Query {
        actor: Party::Entity(&subject),
        delegators: vec![],
        action: &action,
        action_properties: None,
        subject_properties: None,
        resource: Target::Entity { uid: &resource, properties: props },
        context,
        now: Timestamp::from_micros(0),
        source_ip: None,
        token: None,
    };
    if let Ok(d) = engine.decide(&q)
        && d.allowed()
    {
        assert!(engine.compiled().has_action(&action), "allowed an undeclared action `{action}`");
    }
});
