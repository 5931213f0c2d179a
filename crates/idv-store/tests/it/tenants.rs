//! Tenants and admin tokens.

use idv_core::Clock as _;
use idv_core::admin_token::{AdminToken, Role};
use idv_core::audit::Outcome;
use idv_core::tenant::Tenant;
use idv_store::{Applied, Command, StoreError};
use idv_testkit::{Backend, backend_tests};
use uuid::Uuid;

use crate::{Fixture, ctx, tenant};

backend_tests!(
    tenants_are_read_by_id_and_name_and_listed,
    a_duplicate_tenant_name_conflicts,
    admin_tokens_are_created_read_and_revoked,
);

async fn tenants_are_read_by_id_and_name_and_listed(backend: Backend) {
    let f = Fixture::new(backend).await;
    let beta = tenant(&f.store, "beta").await;
    let gamma = tenant(&f.store, "gamma").await;
    assert_eq!(f.store.tenant(beta.id).await.unwrap().as_ref(), Some(&beta));
    assert_eq!(f.store.tenant_by_name("beta").await.unwrap().as_ref(), Some(&beta));
    assert_eq!(beta.display_name, "beta inc.");
    assert_eq!(f.store.tenant(f.clock.new_id()).await.unwrap(), None);
    assert_eq!(f.store.tenant_by_name("nope").await.unwrap(), None);
    assert_eq!(f.store.tenant_by_name("BETA").await.unwrap(), None, "names are exact");

    let all = f.store.tenants(None, 10).await.unwrap();
    assert_eq!(all, [f.tenant.clone(), beta.clone(), gamma.clone()]);
    assert_eq!(f.store.tenants(None, 1).await.unwrap(), std::slice::from_ref(&f.tenant));
    assert_eq!(
        f.store.tenants(Some(f.tenant.id), 1).await.unwrap(),
        std::slice::from_ref(&beta)
    );
    assert_eq!(f.store.tenants(Some(gamma.id), 10).await.unwrap(), []);
}

async fn a_duplicate_tenant_name_conflicts(backend: Backend) {
    let f = Fixture::new(backend).await;
    let head = f.head().await;
    let dup = Tenant {
        id: f.clock.new_id(),
        name: "acme".into(),
        display_name: "Another Acme".into(),
        created_at: f.clock.now(),
    };
    let err = f
        .store
        .execute(Command::CreateTenant(dup.clone()), ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("`acme`"), "{err}");
    assert_eq!(f.store.tenant(dup.id).await.unwrap(), None);
    assert_eq!(
        f.store.tenants(None, 10).await.unwrap(),
        std::slice::from_ref(&f.tenant)
    );
    let events = f.events_after(head).await;
    assert_eq!(events.len(), 1, "one failure event: {events:?}");
    assert_eq!(events[0].action, "tenant.create");
    assert_eq!(events[0].outcome, Outcome::Failure);
    f.chain().await;
}

fn token(f: &Fixture, tenant_id: Uuid, name: &str) -> AdminToken {
    AdminToken {
        id: f.clock.new_id(),
        tenant_id,
        name: name.into(),
        role: Role::Operator,
        platform: false,
        hint: "idvat_abcd…".into(),
        created_at: f.clock.now(),
        created_by: "bootstrap".into(),
        expires_at: None,
        revoked_at: None,
    }
}

async fn create_token(f: &Fixture, token: &AdminToken, secret_hash: [u8; 32]) -> Result<AdminToken, StoreError> {
    let cmd = Command::CreateAdminToken {
        token: token.clone(),
        secret_hash,
    };
    match f.store.execute(cmd, ctx()).await? {
        Applied::AdminToken(t) => Ok(t),
        other => panic!("{other:?}"),
    }
}

async fn revoke(f: &Fixture, tenant_id: Uuid, id: Uuid) -> Result<AdminToken, StoreError> {
    match f
        .store
        .execute(Command::RevokeAdminToken { tenant_id, id }, ctx())
        .await?
    {
        Applied::AdminToken(t) => Ok(t),
        other => panic!("{other:?}"),
    }
}

async fn admin_tokens_are_created_read_and_revoked(backend: Backend) {
    let f = Fixture::new(backend).await;
    let other = tenant(&f.store, "beta").await;
    assert!(!f.store.any_admin_token().await.unwrap());

    let ci = token(&f, f.tenant.id, "ci");
    let root = AdminToken {
        role: Role::Admin,
        platform: true,
        expires_at: Some(f.clock.now().plus_secs(3600)),
        ..token(&f, f.tenant.id, "root")
    };
    let (ci_hash, root_hash) = ([7u8; 32], [9u8; 32]);
    assert_eq!(create_token(&f, &ci, ci_hash).await.unwrap(), ci);
    assert_eq!(create_token(&f, &root, root_hash).await.unwrap(), root);
    assert!(f.store.any_admin_token().await.unwrap());

    // Read by hash, by id, and listed.
    assert_eq!(f.store.admin_token_by_hash(&ci_hash).await.unwrap().as_ref(), Some(&ci));
    assert_eq!(
        f.store.admin_token_by_hash(&root_hash).await.unwrap().as_ref(),
        Some(&root)
    );
    assert_eq!(f.store.admin_token_by_hash(&[8u8; 32]).await.unwrap(), None);
    assert_eq!(
        f.store.admin_token(f.tenant.id, ci.id).await.unwrap().as_ref(),
        Some(&ci)
    );
    assert_eq!(
        f.store.admin_tokens(f.tenant.id, None, 10).await.unwrap(),
        [ci.clone(), root.clone()]
    );
    assert_eq!(
        f.store.admin_tokens(f.tenant.id, Some(ci.id), 10).await.unwrap(),
        std::slice::from_ref(&root)
    );
    assert_eq!(
        f.store.admin_tokens(f.tenant.id, None, 1).await.unwrap(),
        std::slice::from_ref(&ci)
    );

    // The same secret cannot be registered twice.
    let again = token(&f, f.tenant.id, "copy");
    let err = create_token(&f, &again, ci_hash).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(f.store.admin_token(f.tenant.id, again.id).await.unwrap(), None);

    // Another tenant can neither see nor revoke it.
    assert_eq!(f.store.admin_token(other.id, ci.id).await.unwrap(), None);
    assert_eq!(f.store.admin_tokens(other.id, None, 10).await.unwrap(), []);
    let err = revoke(&f, other.id, ci.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(ci.is_usable(f.clock.now()));

    // Revoke: stamped with the store's clock, visible by hash, not twice.
    f.clock.advance_secs(5);
    let revoked = revoke(&f, f.tenant.id, ci.id).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(f.clock.now()));
    let read = f.store.admin_token_by_hash(&ci_hash).await.unwrap().unwrap();
    assert_eq!(read, revoked);
    assert!(!read.is_usable(f.clock.now()));
    let err = revoke(&f, f.tenant.id, ci.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = revoke(&f, f.tenant.id, f.clock.new_id()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(
        f.store
            .admin_token(f.tenant.id, root.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );

    // Audited: two creations, one revocation, four refusals; no secret hash.
    let events: Vec<_> = f
        .chain()
        .await
        .into_iter()
        .filter(|e| e.target_type == "admin_token")
        .collect();
    let summary: Vec<(&str, Outcome)> = events.iter().map(|e| (e.action.as_str(), e.outcome)).collect();
    assert_eq!(
        summary,
        [
            ("admin_token.create", Outcome::Success),
            ("admin_token.create", Outcome::Success),
            ("admin_token.create", Outcome::Failure),
            ("admin_token.revoke", Outcome::Failure),
            ("admin_token.revoke", Outcome::Success),
            ("admin_token.revoke", Outcome::Failure),
            ("admin_token.revoke", Outcome::Failure),
        ]
    );
    assert_eq!(events[0].target_id, ci.id.to_string());
    assert_eq!(events[0].tenant_id, f.tenant.id);
    assert_eq!(events[0].details["name"], "ci");
    assert_eq!(events[0].details["role"], "operator");
    assert_eq!(events[1].details["platform"], true);
    assert_eq!(events[4].target_id, ci.id.to_string());
    let hex = idv_core::hex::encode(&ci_hash);
    for e in &events {
        let details = idv_core::audit::canonical_json(&e.details);
        assert!(!details.contains(&hex) && !details.contains("secret_hash"), "{details}");
    }
}
