//! Agent registration and metadata changes (`NewAgent::into_agent`,
//! `AgentChanges::apply`): every field rule holds exactly as documented
//! (checked against an independent oracle, both ways), an accepted agent
//! starts in `provisioning` at version 1 with its TTL turned into an expiry,
//! and an accepted change bumps the version and sets what it says.
#![no_main]

use idv_core::Timestamp;
use idv_core::lifecycle::Status;
use idv_fuzz::{ChangesInput, NewAgentInput, oracle, small_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (NewAgentInput, ChangesInput, i64)| {
    let (spec, changes, now) = input;
    let id = small_id(0);
    let tenant = small_id(200);
    let now = Timestamp::from_micros(now);
    let spec = spec.to_new_agent();
    let expected = oracle::new_agent(&spec, id);
    let got = spec.clone().into_agent(id, tenant, now, "admin_token:fuzz");
    assert_eq!(got.is_ok(), expected, "{spec:#?} -> {got:?}");
    let Ok(agent) = got else { return };
    assert_eq!((agent.id, agent.tenant_id, agent.version), (id, tenant, 1));
    assert_eq!(agent.status, Status::Provisioning);
    assert_eq!(
        (agent.created_at, agent.updated_at, agent.status_changed_at),
        (now, now, now)
    );
    assert_eq!(
        agent.expires_at,
        spec.ttl_seconds.map(|t| now.plus_secs(t as i64)),
        "ttl {:?}",
        spec.ttl_seconds
    );
    assert_eq!(
        (
            &agent.name,
            &agent.owner,
            &agent.purpose,
            &agent.labels,
            &agent.depends_on
        ),
        (&spec.name, &spec.owner, &spec.purpose, &spec.labels, &spec.depends_on)
    );

    let changes = changes.to_changes();
    let expected = oracle::changes(&changes, id);
    let mut changed = agent.clone();
    let later = Timestamp::from_micros(now.as_micros().saturating_add(1));
    let got = changes.clone().apply(&mut changed, later);
    assert_eq!(got.is_ok(), expected, "{changes:#?} -> {got:?}");
    if got.is_ok() {
        assert_eq!(changed.version, agent.version + 1);
        assert_eq!(changed.updated_at, later);
        assert_eq!(changed.id, agent.id);
        assert_eq!(changed.status, agent.status);
        assert_eq!(changed.created_at, agent.created_at);
        assert_eq!(&changed.name, changes.name.as_ref().unwrap_or(&agent.name));
        assert_eq!(&changed.owner, changes.owner.as_ref().unwrap_or(&agent.owner));
        assert_eq!(&changed.labels, changes.labels.as_ref().unwrap_or(&agent.labels));
        assert_eq!(changed.environment, changes.environment.unwrap_or(agent.environment));
        assert_eq!(&changed.team, changes.team.as_ref().unwrap_or(&agent.team));
        assert_eq!(&changed.class, changes.class.as_ref().unwrap_or(&agent.class));
        assert_eq!(
            &changed.depends_on,
            changes.depends_on.as_ref().unwrap_or(&agent.depends_on)
        );
        // What was accepted still obeys every rule of registration.
        let again = idv_core::agent::NewAgent {
            name: changed.name.clone(),
            owner: changed.owner.clone(),
            purpose: changed.purpose.clone(),
            environment: changed.environment,
            team: changed.team.clone(),
            labels: changed.labels.clone(),
            capabilities: changed.capabilities.clone(),
            class: changed.class.clone(),
            parent: changed.parent.clone(),
            depends_on: changed.depends_on.clone(),
            grants: changed.grants.clone(),
            ttl_seconds: None,
        };
        assert!(oracle::new_agent(&again, id), "{changed:#?}");
    }
});
