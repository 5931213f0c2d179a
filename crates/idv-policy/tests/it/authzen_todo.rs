//! The OpenID AuthZEN interop "Todo" scenario, evaluated in process: our
//! Cedar rendering of its users and rules must give every expected decision
//! of the published data (`tests/conformance/authzen`, unchanged).

use std::path::PathBuf;

use idv_core::Timestamp;
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_policy::{Engine, Party, Query, Target, compile};
use serde_json::{Map, Value};

fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies/examples/authzen-todo")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The AuthZEN interop decisions, vendored in `tests/conformance` (a test
/// whose data is missing fails: it is never counted as passed).
fn conformance() -> Value {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/authzen/todo-decisions-1_0-02.json");
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}

pub fn todo_engine() -> Engine {
    let compiled = compile(&example("policies.cedar"), Some(&example("schema.cedarschema"))).unwrap();
    let directory: Vec<DirectoryEntity> = serde_json::from_str(&example("entities.json")).unwrap();
    crate::directory_engine(compiled, &directory)
}

fn entity(v: &Value) -> EntityRef {
    EntityRef {
        type_name: v["type"].as_str().unwrap().to_owned(),
        id: v["id"].as_str().unwrap().to_owned(),
    }
}

fn decide(engine: &Engine, req: &Value) -> bool {
    let subject = entity(&req["subject"]);
    let resource = entity(&req["resource"]);
    let empty = Map::new();
    let q = Query {
        actor: Party::Entity(&subject),
        delegators: vec![],
        action: req["action"]["name"].as_str().unwrap(),
        action_properties: req["action"]["properties"].as_object(),
        subject_properties: req["subject"]["properties"].as_object(),
        resource: Target::Entity {
            uid: &resource,
            properties: req["resource"]["properties"].as_object(),
        },
        context: req["context"].as_object().unwrap_or(&empty),
        now: Timestamp::from_micros(0),
        source_ip: None,
        token: None,
    };
    engine.decide(&q).unwrap().allowed()
}

#[test]
fn every_expected_decision_matches() {
    let data = conformance();
    let engine = todo_engine();
    assert!(engine.warnings().is_empty(), "{:?}", engine.warnings());
    let single = data["evaluation"].as_array().unwrap();
    assert_eq!(single.len(), 40);
    for case in single {
        let got = decide(&engine, &case["request"]);
        assert_eq!(got, case["expected"].as_bool().unwrap(), "{}", case["request"]);
    }
    let batches = data["evaluations"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    for case in batches {
        let req = &case["request"];
        let expected = case["expected"].as_array().unwrap();
        let items = req["evaluations"].as_array().unwrap();
        assert_eq!(items.len(), expected.len());
        for (item, want) in items.iter().zip(expected) {
            // AuthZEN §7.1: each evaluation's fields override the defaults.
            let mut merged = req.clone();
            for (k, v) in item.as_object().unwrap() {
                merged[k] = v.clone();
            }
            assert_eq!(
                decide(&engine, &merged),
                want["decision"].as_bool().unwrap(),
                "{merged}"
            );
        }
    }
}

#[test]
fn unknown_subjects_and_actions_are_denied() {
    let engine = todo_engine();
    let req = serde_json::json!({
        "subject": {"type": "user", "id": "nobody"},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "t"}
    });
    assert!(!decide(&engine, &req));
    let req = serde_json::json!({
        "subject": {"type": "user", "id": "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},
        "action": {"name": "can_fly"},
        "resource": {"type": "todo", "id": "t"}
    });
    assert!(!decide(&engine, &req));
    let req = serde_json::json!({
        "subject": {"type": "user", "id": "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "spaceship", "id": "t"}
    });
    assert!(!decide(&engine, &req));
}
