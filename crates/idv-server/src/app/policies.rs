//! Policy administration (versions, roles, grants, the directory) and the
//! per-tenant engine cache. An engine is rebuilt when the tenant's policy
//! revision moves (any node's change, seen through the store's change
//! generation) or when a grant in it expires; compiled versions are kept, so
//! activation and rollback swap engines without recompiling.

use std::collections::BTreeSet;
use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_core::policy_version::PolicyVersion;
use idv_core::role::{GrantSubject, Permission as Granted, Role, RoleGrant};
use idv_policy::{Compiled, Engine, Inputs, compile, compile_stored};
use idv_store::StoreError;
use uuid::Uuid;

use super::cache::{GenCache, Immutable, Stamped};
use super::{AppError, Caller};
use crate::AppState;

/// Compiled versions and built engines of every tenant on this node.
#[derive(Debug, Default)]
pub struct Engines {
    /// Active version and revision by tenant, per change generation.
    states: GenCache<Uuid, (Option<i64>, i64)>,
    /// The engine of each tenant, stamped with the revision it was built at.
    built: Stamped<Uuid, i64, Arc<Engine>>,
    /// Compiled versions (immutable once stored). Every version stored
    /// (candidates too) is compiled once and kept, so the set is bounded.
    compiled: Immutable<(Uuid, i64), Arc<Compiled>, COMPILED_CAPACITY>,
    /// Held while an engine is built: requests that find theirs stale wait
    /// for the build in progress rather than each building it (builds are
    /// rare, so one at a time per node is enough).
    building: tokio::sync::Mutex<()>,
}

/// Most compiled versions kept on a node.
const COMPILED_CAPACITY: usize = 1_000;

impl Engines {
    /// The tenant's engine if it was built at `rev` and no grant in it expired.
    fn fresh(&self, tenant_id: Uuid, rev: i64, now: Timestamp) -> Option<Arc<Engine>> {
        self.built
            .get(&tenant_id, &rev)
            .filter(|e| e.valid_until().is_none_or(|u| now < u))
    }
}

/// The tenant's active version and policy revision.
async fn policy_state(state: &AppState, tenant_id: Uuid) -> Result<(Option<i64>, i64), AppError> {
    let cache = &state.caches.engines;
    let generation = state.store.changes().current();
    (cache.states)
        .get_or_load(tenant_id, generation, async {
            Ok(state.store.policy_state(tenant_id).await?)
        })
        .await
}

/// The tenant's active version, compiled (what new roles, grants and
/// entities are checked against), without building an engine.
pub async fn active(state: &AppState, tenant_id: Uuid) -> Result<Arc<Compiled>, AppError> {
    let (active, _) = policy_state(state, tenant_id).await?;
    compiled(state, tenant_id, active).await
}

/// The engine for `tenant_id`, rebuilt if anything it depends on changed.
pub async fn engine(state: &AppState, tenant_id: Uuid) -> Result<Arc<Engine>, AppError> {
    let cache = &state.caches.engines;
    let (active, rev) = policy_state(state, tenant_id).await?;
    let now = state.clock.now();
    if let Some(e) = cache.fresh(tenant_id, rev, now) {
        return Ok(e);
    }
    let _building = cache.building.lock().await;
    if let Some(e) = cache.fresh(tenant_id, rev, now) {
        return Ok(e);
    }
    let compiled = compiled(state, tenant_id, active).await?;
    let roles = state.store.roles(tenant_id).await?;
    let grants = state.store.role_grants(tenant_id, None).await?;
    let directory = state.store.directory(tenant_id).await?;
    // Building is CPU work (hundreds of milliseconds for large tenants):
    // off the request threads.
    let engine = tokio::task::spawn_blocking(move || {
        Arc::new(Engine::build(Inputs {
            compiled,
            version: active.unwrap_or(0),
            roles: &roles,
            grants: &grants,
            directory: &directory,
            now,
        }))
    })
    .await
    .map_err(|e| AppError::Internal(format!("building the policy engine failed: {e}")))?;
    for w in engine.warnings() {
        tracing::warn!(tenant = %tenant_id, warning = %w, "policy engine");
    }
    cache.built.put(tenant_id, rev, engine.clone());
    Ok(engine)
}

/// Version `active` of the tenant compiled (`None`: the base schema alone).
async fn compiled(state: &AppState, tenant_id: Uuid, active: Option<i64>) -> Result<Arc<Compiled>, AppError> {
    let key = (tenant_id, active.unwrap_or(0));
    if let Some(c) = state.caches.engines.compiled.get(&key) {
        return Ok(c);
    }
    let c = match active {
        None => compile_stored("", None),
        Some(v) => {
            let pv = state
                .store
                .policy_version(tenant_id, v)
                .await?
                .ok_or_else(|| AppError::Internal(format!("active policy version {v} is missing")))?;
            compile_stored(&pv.policies, pv.schema.as_deref())
        }
    }
    .map_err(|p| AppError::Internal(format!("stored policy version does not compile: {p:?}")))?;
    let c = Arc::new(c);
    state.caches.engines.compiled.put(key, c.clone());
    Ok(c)
}

/// Compiles a candidate version, or says why it does not.
pub fn validate(policies: &str, schema: Option<&str>) -> Result<Compiled, AppError> {
    compile(policies, schema).map_err(AppError::PolicyInvalid)
}

/// Stores a new version (role `admin`; audited). It must compile.
pub async fn upload(
    state: &AppState,
    caller: &Caller,
    policies: String,
    schema: Option<String>,
    description: String,
    activate: bool,
) -> Result<(PolicyVersion, Vec<String>), AppError> {
    caller
        .require(state, Permission::ManagePolicy, Action::PolicyVersionCreate)
        .await?;
    if description.chars().count() > idv_core::policy_version::DESCRIPTION {
        return Err(AppError::BadParameter {
            field: "description".into(),
            detail: format!(
                "`description`: at most {} characters",
                idv_core::policy_version::DESCRIPTION
            ),
        });
    }
    let schema = schema.filter(|s| !s.trim().is_empty());
    let compiled = validate(&policies, schema.as_deref())?;
    let v = PolicyVersion {
        tenant_id: caller.tenant.id,
        version: 0,
        policies,
        schema,
        policy_ids: compiled.policy_ids(),
        description,
        created_at: state.clock.now(),
        created_by: caller.principal.token_name.clone(),
        activated_at: None,
        active: false,
    };
    let v = state.store.create_policy_version(v, activate, caller.context()).await?;
    state
        .caches
        .engines
        .compiled
        .put((v.tenant_id, v.version), Arc::new(compiled));
    let warnings = if v.active {
        active_warnings(state, v.tenant_id).await?
    } else {
        vec![]
    };
    Ok((v, warnings))
}

/// What the active version leaves without effect: roles and grants naming
/// actions it does not declare, grants that cannot apply. Builds its engine
/// now, as the next decision would have.
async fn active_warnings(state: &AppState, tenant_id: Uuid) -> Result<Vec<String>, AppError> {
    let mut warnings = engine(state, tenant_id).await?.warnings().to_vec();
    // A condition written against the version before may not type-check
    // against this one: it would only ever err (and deny).
    let compiled = active(state, tenant_id).await?;
    let roles = state.store.roles(tenant_id).await?;
    for g in state.store.role_grants(tenant_id, None).await? {
        if g.condition.is_some()
            && let Err(problems) = compiled.validate_grant(&g, &roles)
        {
            for p in problems {
                warnings.push(format!(
                    "grant `{}`: its condition no longer validates: {}",
                    g.id, p.message
                ));
            }
        }
    }
    Ok(warnings)
}

/// Activates a version, or (`None`) rolls back to the one active before;
/// answers with its [`active_warnings`].
pub async fn activate(
    state: &AppState,
    caller: &Caller,
    version: Option<i64>,
) -> Result<(PolicyVersion, Vec<String>), AppError> {
    let action = if version.is_some() {
        Action::PolicyVersionActivate
    } else {
        Action::PolicyVersionRollback
    };
    caller.require(state, Permission::ManagePolicy, action).await?;
    let v = state
        .store
        .activate_policy_version(caller.tenant.id, version, caller.context())
        .await?;
    Ok((v, active_warnings(state, caller.tenant.id).await?))
}

/// The tenant's versions, newest first.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<PolicyVersion>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::PolicyList)
        .await?;
    Ok(state.store.policy_versions(caller.tenant.id).await?)
}

/// One version.
pub async fn get(state: &AppState, caller: &Caller, version: i64) -> Result<PolicyVersion, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::PolicyGet)
        .await?;
    state
        .store
        .policy_version(caller.tenant.id, version)
        .await?
        .ok_or_else(|| not_found("policy version", version.to_string()))
}

/// A candidate engine: a stored version or uploaded text, with the
/// tenant's current roles, grants and directory.
pub async fn candidate(
    state: &AppState,
    caller: &Caller,
    version: Option<i64>,
    text: Option<(&str, Option<&str>)>,
) -> Result<Arc<Engine>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::PolicyTest)
        .await?;
    let tenant_id = caller.tenant.id;
    let compiled = match (version, text) {
        (Some(v), None) => {
            get(state, caller, v).await?;
            compiled(state, tenant_id, Some(v)).await?
        }
        (None, Some((p, s))) => Arc::new(validate(p, s)?),
        _ => {
            return Err(AppError::BadParameter {
                field: "version".into(),
                detail: "give either `version` or `policies`".into(),
            });
        }
    };
    let roles = state.store.roles(tenant_id).await?;
    let grants = state.store.role_grants(tenant_id, None).await?;
    let directory = state.store.directory(tenant_id).await?;
    Ok(Arc::new(Engine::build(Inputs {
        compiled,
        version: version.unwrap_or(0),
        roles: &roles,
        grants: &grants,
        directory: &directory,
        now: state.clock.now(),
    })))
}

/// Creates or replaces a role. Its actions must exist in the active schema.
pub async fn put_role(
    state: &AppState,
    caller: &Caller,
    name: &str,
    description: String,
    actions: BTreeSet<String>,
) -> Result<Role, AppError> {
    caller.require(state, Permission::ManagePolicy, Action::RolePut).await?;
    let role = Role {
        tenant_id: caller.tenant.id,
        name: name.to_owned(),
        description,
        actions,
        updated_at: state.clock.now(),
    };
    role.validate()?;
    let compiled = active(state, caller.tenant.id).await?;
    if let Some(a) = role.actions.iter().find(|a| !compiled.has_action(a)) {
        return Err(AppError::BadParameter {
            field: "actions".into(),
            detail: format!(
                "`actions`: `{a}` is not an action of the active policy schema (declared: {})",
                compiled.action_names().join(", ")
            ),
        });
    }
    Ok(state.store.put_role(role, caller.context()).await?)
}

/// Deletes a role no grant holds.
pub async fn delete_role(state: &AppState, caller: &Caller, name: &str) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManagePolicy, Action::RoleDelete)
        .await?;
    Ok(state
        .store
        .delete_role(caller.tenant.id, name.to_owned(), caller.context())
        .await?)
}

/// The tenant's roles.
pub async fn roles(state: &AppState, caller: &Caller) -> Result<Vec<Role>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::RoleList)
        .await?;
    Ok(state.store.roles(caller.tenant.id).await?)
}

/// What a new grant says.
#[derive(Debug)]
pub struct NewGrant {
    /// Who receives it.
    pub subject: GrantSubject,
    /// What it gives.
    pub permission: Granted,
    /// A Cedar condition.
    pub condition: Option<String>,
    /// When it lapses.
    pub expires_at: Option<Timestamp>,
}

/// Grants a role or single permission (a conditional grant's condition is
/// checked against the active schema).
pub async fn grant(state: &AppState, caller: &Caller, new: NewGrant) -> Result<RoleGrant, AppError> {
    caller
        .require(state, Permission::ManagePolicy, Action::GrantCreate)
        .await?;
    let g = RoleGrant {
        id: state.clock.new_id(),
        tenant_id: caller.tenant.id,
        subject: new.subject,
        permission: new.permission,
        condition: new.condition,
        expires_at: new.expires_at,
        created_at: state.clock.now(),
        created_by: caller.principal.token_name.clone(),
    };
    g.validate()?;
    let compiled = active(state, caller.tenant.id).await?;
    if let Granted::Action(a) = &g.permission
        && !compiled.has_action(a)
    {
        return Err(AppError::BadParameter {
            field: "action".into(),
            detail: format!("`action`: `{a}` is not an action of the active policy schema"),
        });
    }
    if g.condition.is_some() {
        let roles = state.store.roles(caller.tenant.id).await?;
        compiled.validate_grant(&g, &roles).map_err(AppError::PolicyInvalid)?;
    }
    Ok(state.store.create_grant(g, caller.context()).await?)
}

/// Removes a grant.
pub async fn revoke_grant(state: &AppState, caller: &Caller, id: Uuid) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManagePolicy, Action::GrantDelete)
        .await?;
    Ok(state.store.delete_grant(caller.tenant.id, id, caller.context()).await?)
}

/// A page of the tenant's grants (`subject`: only those to it), oldest
/// first, after the grant `after`.
pub async fn grants(
    state: &AppState,
    caller: &Caller,
    subject: Option<&GrantSubject>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RoleGrant>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::GrantList)
        .await?;
    Ok(state.store.grants_page(caller.tenant.id, subject, after, limit).await?)
}

/// Creates or replaces directory entities, all or nothing. Their types must
/// be declared in the active schema and their attributes convertible.
pub async fn put_entities(
    state: &AppState,
    caller: &Caller,
    mut entities: Vec<DirectoryEntity>,
) -> Result<usize, AppError> {
    caller
        .require(state, Permission::ManagePolicy, Action::DirectoryPut)
        .await?;
    if entities.is_empty() || entities.len() > idv_core::directory::limits::BATCH {
        return Err(AppError::BadParameter {
            field: "entities".into(),
            detail: format!(
                "`entities`: 1 to {} entities per request",
                idv_core::directory::limits::BATCH
            ),
        });
    }
    let compiled = active(state, caller.tenant.id).await?;
    let mut seen = std::collections::HashSet::new();
    for (i, e) in entities.iter_mut().enumerate() {
        e.tenant_id = caller.tenant.id;
        let at = |detail: String| AppError::BadParameter {
            field: format!("entities[{i}]"),
            detail: format!("`entities[{i}]`: {detail}"),
        };
        e.validate().map_err(|err| at(err.to_string()))?;
        if !seen.insert(e.uid.clone()) {
            return Err(at(format!(
                "`{}::{}` is given twice in this request",
                e.uid.type_name, e.uid.id
            )));
        }
        for r in std::iter::once(&e.uid).chain(&e.parents) {
            if !compiled.has_entity_type(&r.type_name) {
                return Err(at(format!(
                    "`{}` is not an entity type of the active policy schema",
                    r.type_name
                )));
            }
        }
        if let Some(p) = e
            .parents
            .iter()
            .find(|p| !compiled.may_be_in(&e.uid.type_name, &p.type_name))
        {
            return Err(at(format!(
                "the active policy schema does not let a `{}` be in a `{}`",
                e.uid.type_name, p.type_name
            )));
        }
        for (k, v) in &e.attrs {
            idv_policy::value::to_cedar(v, || format!("attrs.{k}")).map_err(|err| at(err.to_string()))?;
        }
    }
    let n = entities.len();
    state
        .store
        .put_entities(caller.tenant.id, entities, caller.context())
        .await?;
    Ok(n)
}

/// Removes a directory entity.
pub async fn delete_entity(state: &AppState, caller: &Caller, uid: EntityRef) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManagePolicy, Action::DirectoryDelete)
        .await?;
    Ok(state
        .store
        .delete_entity(caller.tenant.id, uid, caller.context())
        .await?)
}

/// The tenant's directory.
pub async fn directory(state: &AppState, caller: &Caller) -> Result<Vec<DirectoryEntity>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DirectoryList)
        .await?;
    Ok(state.store.directory(caller.tenant.id).await?)
}

fn not_found(what: &'static str, id: String) -> AppError {
    AppError::Store(StoreError::NotFound { what, id })
}
