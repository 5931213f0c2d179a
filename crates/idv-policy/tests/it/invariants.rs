//! Properties that must hold whatever the policies and grants say.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::agent::Agent;
use idv_core::directory::EntityRef;
use idv_core::grant::Grants;
use idv_core::lifecycle::Status;
use idv_core::role::{GrantSubject, Permission, Role, RoleGrant};
use idv_policy::{Engine, Inputs, Outcome, Party, Query, Target, compile};
use proptest::prelude::*;
use serde_json::Map;
use uuid::Uuid;

fn agent(n: u128, status: Status, class: Option<&str>) -> Agent {
    let t = Timestamp::from_micros(0);
    Agent {
        id: Uuid::from_u128(n),
        tenant_id: Uuid::nil(),
        name: format!("a{n}"),
        owner: "owner@example.com".into(),
        purpose: String::new(),
        environment: None,
        team: None,
        labels: BTreeMap::from([(
            "tier".to_owned(),
            if n.is_multiple_of(2) { "gold" } else { "basic" }.to_owned(),
        )]),
        capabilities: vec![],
        class: class.map(str::to_owned),
        parent: None,
        depends_on: vec![],
        grants: Grants::default(),
        status,
        status_reason: None,
        status_changed_at: t,
        status_changed_by: String::new(),
        expires_at: None,
        tokens_not_before: None,
        created_at: t,
        created_by: String::new(),
        updated_at: t,
        version: 1,
    }
}

/// Policies that never look at `context.role`, so each party's own
/// permission is the same whether it acts or delegates.
const POLICY_POOL: [&str; 6] = [
    r#"permit(principal, action, resource);"#,
    r#"permit(principal is Agent, action == Action::"read", resource) when { principal.labels.contains("tier=gold") };"#,
    r#"permit(principal in Role::"payer", action in [Action::"transfer"], resource) when { context has amount && context.amount < 500 };"#,
    r#"forbid(principal, action == Action::"transfer", resource) when { context has amount && context.amount > 900 };"#,
    r#"forbid(principal is Agent, action, resource) when { principal.labels.contains("tier=basic") && context.hour < 6 };"#,
    r#"permit(principal in Class::"ops", action, resource) unless { action == Action::"write" };"#,
];

fn statuses() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Provisioning),
        Just(Status::Active),
        Just(Status::Suspended),
        Just(Status::Retired)
    ]
}

fn engine(policies: &[bool], grants: &[(u8, bool)]) -> Engine {
    let text: String = POLICY_POOL
        .iter()
        .zip(policies)
        .filter(|(_, on)| **on)
        .map(|(p, _)| *p)
        .collect::<Vec<_>>()
        .join("\n");
    let roles = vec![Role {
        tenant_id: Uuid::nil(),
        name: "payer".into(),
        description: String::new(),
        actions: BTreeSet::from(["transfer".to_owned(), "read".to_owned()]),
        updated_at: Timestamp::from_micros(0),
    }];
    let grants: Vec<RoleGrant> = grants
        .iter()
        .enumerate()
        .map(|(i, (who, role))| RoleGrant {
            id: Uuid::from_u128(1000 + i as u128),
            tenant_id: Uuid::nil(),
            subject: GrantSubject::Agent(Uuid::from_u128(u128::from(*who % 4))),
            permission: if *role {
                Permission::Role("payer".into())
            } else {
                Permission::Action("write".into())
            },
            condition: None,
            expires_at: None,
            created_at: Timestamp::from_micros(0),
            created_by: String::new(),
        })
        .collect();
    Engine::build(Inputs {
        compiled: Arc::new(compile(&text, None).unwrap()),
        version: 1,
        roles: &roles,
        grants: &grants,
        directory: &[],
        now: Timestamp::from_micros(0),
    })
}

fn ask<'a>(
    e: &Engine,
    actor: Party<'a>,
    delegators: Vec<Party<'a>>,
    action: &'a str,
    ctx: &'a Map<String, serde_json::Value>,
    hour: i64,
    res: &'a EntityRef,
) -> Outcome {
    e.decide(&Query {
        actor,
        delegators,
        action,
        action_properties: None,
        subject_properties: None,
        resource: Target::Entity {
            uid: res,
            properties: None,
        },
        context: ctx,
        now: Timestamp::from_micros(hour * 3_600_000_000),
        source_ip: None,
        token: None,
    })
    .unwrap()
    .outcome
}

proptest! {
    /// A suspended, retired or not-yet-activated agent is never allowed,
    /// as actor or as delegator, whatever the policies and grants.
    #[test]
    fn inactive_agents_are_never_allowed(
        policies in proptest::collection::vec(any::<bool>(), POLICY_POOL.len()),
        grants in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..6),
        status in statuses(),
        action in prop_oneof![Just("read"), Just("write"), Just("transfer")],
        amount in 0i64..1000,
        hour in 0i64..24,
    ) {
        let e = engine(&policies, &grants);
        let bad = agent(1, status, Some("ops"));
        let good = agent(2, Status::Active, Some("ops"));
        let res = EntityRef { type_name: "Resource".into(), id: "r".into() };
        let ctx: Map<String, serde_json::Value> = serde_json::json!({"amount": amount}).as_object().unwrap().clone();
        let alone = ask(&e, Party::Agent(&bad), vec![], action, &ctx, hour, &res);
        let acting_for = ask(&e, Party::Agent(&good), vec![Party::Agent(&bad)], action, &ctx, hour, &res);
        if status != Status::Active {
            prop_assert_eq!(alone, Outcome::Deny);
            prop_assert_eq!(acting_for, Outcome::Deny);
        }
    }

    /// A suspended, retired or not-yet-activated agent is never called
    /// (`invoke` with it as the resource), whatever the policies and grants;
    /// an active one can be, so the property is not vacuous.
    #[test]
    fn inactive_callees_are_never_invoked(
        policies in proptest::collection::vec(any::<bool>(), POLICY_POOL.len()),
        grants in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..6),
        status in statuses(),
        hour in 0i64..24,
    ) {
        let e = engine(&policies, &grants);
        let caller = agent(2, Status::Active, Some("ops"));
        let callee = agent(3, status, None);
        let ctx = Map::new();
        let q = |callee| Query {
            actor: Party::Agent(&caller),
            delegators: vec![],
            action: "invoke",
            action_properties: None,
            subject_properties: None,
            resource: Target::Agent(callee),
            context: &ctx,
            now: Timestamp::from_micros(hour * 3_600_000_000),
            source_ip: None,
            token: None,
        };
        let d = e.decide(&q(&callee)).unwrap();
        if status != Status::Active {
            prop_assert_eq!(d.outcome, Outcome::Deny);
        } else if policies.first() == Some(&true) {
            // `permit(principal, action, resource)` is on and no forbid in
            // the pool applies to an invoke by a gold-tier ops agent.
            prop_assert_eq!(d.outcome, Outcome::Allow);
        }
    }

    /// A delegated decision is never more permissive than the delegator's
    /// own (nor the actor's own).
    #[test]
    fn delegation_never_widens(
        policies in proptest::collection::vec(any::<bool>(), POLICY_POOL.len()),
        grants in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..6),
        actor_n in 0u128..4,
        delegator_n in 0u128..4,
        actor_class in any::<bool>(),
        action in prop_oneof![Just("read"), Just("write"), Just("transfer")],
        amount in 0i64..1000,
        hour in 0i64..24,
    ) {
        let e = engine(&policies, &grants);
        let actor = agent(actor_n, Status::Active, actor_class.then_some("ops"));
        let delegator = agent(delegator_n, Status::Active, None);
        let res = EntityRef { type_name: "Resource".into(), id: "r".into() };
        let ctx: Map<String, serde_json::Value> = serde_json::json!({"amount": amount}).as_object().unwrap().clone();
        let delegated = ask(&e, Party::Agent(&actor), vec![Party::Agent(&delegator)], action, &ctx, hour, &res);
        if delegated == Outcome::Allow {
            prop_assert_eq!(ask(&e, Party::Agent(&delegator), vec![], action, &ctx, hour, &res), Outcome::Allow);
            prop_assert_eq!(ask(&e, Party::Agent(&actor), vec![], action, &ctx, hour, &res), Outcome::Allow);
        }
    }
}

#[test]
fn roles_grants_and_classes_give_what_they_say() {
    let e = engine(&[false, false, true, false, false, false], &[(1, true), (2, false)]);
    let payer = agent(1, Status::Active, None);
    let writer = agent(2, Status::Active, None);
    let (roles, actions) = e.granted(&payer);
    assert_eq!(roles, BTreeSet::from(["payer".to_owned()]));
    assert_eq!(actions, BTreeSet::from(["read".to_owned(), "transfer".to_owned()]));
    let (roles, actions) = e.granted(&writer);
    assert!(roles.is_empty());
    assert_eq!(actions, BTreeSet::from(["write".to_owned()]));
    let res = EntityRef {
        type_name: "Resource".into(),
        id: "r".into(),
    };
    let ctx = Map::new();
    assert_eq!(
        ask(&e, Party::Agent(&payer), vec![], "transfer", &ctx, 12, &res),
        Outcome::Allow
    );
    assert_eq!(
        ask(&e, Party::Agent(&writer), vec![], "transfer", &ctx, 12, &res),
        Outcome::Deny
    );
    assert_eq!(
        ask(&e, Party::Agent(&writer), vec![], "write", &ctx, 12, &res),
        Outcome::Allow
    );
}

#[test]
fn approvals_conditions_expiry_and_fail_closed_forbids() {
    let text = r#"
        @id("small") permit(principal, action == Action::"transfer", resource) when { context has amount && context.amount <= 100 };
        @id("large") @requires_approval("transfers above 100 need the owner")
        permit(principal, action == Action::"transfer", resource) when { context has amount && context.amount > 100 };
        @id("no-crazy") forbid(principal, action == Action::"transfer", resource) when { context has amount && context.amount > 1000000 };
    "#;
    let compiled = Arc::new(compile(text, None).unwrap());
    let now = Timestamp::from_micros(0);
    let conditional = RoleGrant {
        id: Uuid::from_u128(7),
        tenant_id: Uuid::nil(),
        subject: GrantSubject::Agent(Uuid::from_u128(3)),
        permission: Permission::Action("write".into()),
        condition: Some(r#"resource has tags && resource.tags.contains("sandbox")"#.into()),
        expires_at: Some(now.plus_secs(60)),
        created_at: now,
        created_by: String::new(),
    };
    let e = Engine::build(Inputs {
        compiled,
        version: 1,
        roles: &[],
        grants: &[conditional],
        directory: &[],
        now,
    });
    assert_eq!(e.valid_until(), Some(now.plus_secs(60)));
    let a = agent(3, Status::Active, None);
    let res = EntityRef {
        type_name: "Resource".into(),
        id: "r".into(),
    };
    let amount = |n: serde_json::Value| serde_json::json!({ "amount": n }).as_object().unwrap().clone();
    assert_eq!(
        ask(&e, Party::Agent(&a), vec![], "transfer", &amount(50.into()), 12, &res),
        Outcome::Allow
    );
    assert_eq!(
        ask(&e, Party::Agent(&a), vec![], "transfer", &amount(500.into()), 12, &res),
        Outcome::RequiresApproval(vec!["transfers above 100 need the owner".into()])
    );
    assert_eq!(
        ask(
            &e,
            Party::Agent(&a),
            vec![],
            "transfer",
            &amount(5_000_000.into()),
            12,
            &res
        ),
        Outcome::Deny
    );
    // A string where the forbid expects a number: the forbid errors, so deny.
    assert_eq!(
        ask(
            &e,
            Party::Agent(&a),
            vec![],
            "transfer",
            &amount("lots".into()),
            12,
            &res
        ),
        Outcome::Deny
    );
    // The conditional grant: only on sandbox resources.
    let ctx = Map::new();
    assert_eq!(
        ask(&e, Party::Agent(&a), vec![], "write", &ctx, 12, &res),
        Outcome::Deny
    );
    let props = serde_json::json!({"tags": ["sandbox"]}).as_object().unwrap().clone();
    let d = e
        .decide(&Query {
            actor: Party::Agent(&a),
            delegators: vec![],
            action: "write",
            action_properties: None,
            subject_properties: None,
            resource: Target::Entity {
                uid: &res,
                properties: Some(&props),
            },
            context: &ctx,
            now,
            source_ip: None,
            token: None,
        })
        .unwrap();
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.parties[0].determining, vec![format!("grant:{}", Uuid::from_u128(7))]);
}

/// Whether `from` reaches `to` over `edges` (itself included).
fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut todo = vec![from];
    while let Some(n) = todo.pop() {
        if n == to {
            return true;
        }
        if !std::mem::replace(&mut seen[n], true) {
            todo.extend(&edges[n]);
        }
    }
    false
}

fn directory_entity(type_name: &str, id: String, parents: Vec<String>) -> idv_core::directory::DirectoryEntity {
    let r = |id: String| EntityRef {
        type_name: type_name.into(),
        id,
    };
    idv_core::directory::DirectoryEntity {
        tenant_id: Uuid::nil(),
        uid: r(id),
        attrs: Map::new(),
        parents: parents.into_iter().map(r).collect(),
    }
}

proptest! {
    /// Membership through the directory is transitive whatever its shape,
    /// cycles included: `principal in Group::"g0"` and `resource in
    /// Resource::"r0"` hold for exactly the subjects and resources that
    /// reach them. (The engine hands Cedar ancestor sets it closed itself.)
    #[test]
    fn directory_membership_is_transitive(
        groups in prop::collection::vec(prop::collection::vec(0usize..5, 0..3), 5),
        containers in prop::collection::vec(prop::collection::vec(0usize..4, 0..3), 4),
        subject_group in 0usize..5,
        resource in 0usize..4,
    ) {
        let mut directory: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(i, up)| directory_entity("Group", format!("g{i}"), up.iter().map(|j| format!("g{j}")).collect()))
            .collect();
        directory.extend(containers.iter().enumerate().map(|(i, up)| {
            directory_entity("Resource", format!("r{i}"), up.iter().map(|j| format!("r{j}")).collect())
        }));
        // A Human in one group (built as a group, then retyped: its parent stays a Group).
        let mut human = directory_entity("Group", "h".into(), vec![format!("g{subject_group}")]);
        human.uid.type_name = "Human".into();
        directory.push(human.clone());
        let compiled = compile(
            r#"permit(principal in Group::"g0", action == Action::"read", resource in Resource::"r0");"#,
            None,
        )
        .unwrap();
        let e = crate::directory_engine(compiled, &directory);
        let res = EntityRef { type_name: "Resource".into(), id: format!("r{resource}") };
        let want = reaches(&groups, subject_group, 0) && reaches(&containers, resource, 0);
        let got = ask(&e, Party::Entity(&human.uid), vec![], "read", &Map::new(), 12, &res);
        prop_assert_eq!(got == Outcome::Allow, want, "{:?}", got);
    }
}
