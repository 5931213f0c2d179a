//! The decision engine of one tenant: its active version, roles, grants and
//! directory, turned into Cedar policy slices and entity memberships. Built
//! once per change, shared by every decision until the next.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet,
    PrincipalConstraint, Request, RestrictedExpression,
};
use idv_core::Timestamp;
use idv_core::agent::Agent;
use idv_core::approval::ApprovalRule;
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_core::lifecycle::Status;
use idv_core::role::{GrantSubject, Permission, Role, RoleGrant};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::compile::{Compiled, action_uid, entity_uid, may_apply};
use crate::value::{ValueError, to_cedar};

/// Context keys the server fills in; callers may not set them. `action`
/// and `subject` carry the request's `action.properties` and (for agent and
/// token subjects) `subject.properties` (AuthZEN 1.0 §5.1, §5.3).
pub const RESERVED_CONTEXT: [&str; 8] = [
    "now",
    "hour",
    "weekday",
    "source_ip",
    "token",
    "role",
    "action",
    "subject",
];

/// A party to a decision: the acting subject or one of its delegators.
#[derive(Clone, Copy, Debug)]
pub enum Party<'a> {
    /// A registered agent.
    Agent(&'a Agent),
    /// A directory entity (e.g. a `Human`, or a tenant type like `user`).
    Entity(&'a EntityRef),
}

/// What the decision is about.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A registered agent (e.g. the callee of `invoke`).
    Agent(&'a Agent),
    /// Any other resource, with the caller's view of its attributes.
    Entity {
        /// Type and id.
        uid: &'a EntityRef,
        /// Attributes supplied with the request (they override stored ones).
        properties: Option<&'a Map<String, Value>>,
    },
}

/// Facts from the access token the subject presented.
#[derive(Clone, Debug, Default)]
pub struct TokenFacts {
    /// Its scopes.
    pub scopes: BTreeSet<String>,
    /// Its `authorization_details` types.
    pub task_types: BTreeSet<String>,
    /// How many delegators stand behind the actor.
    pub delegators: i64,
}

/// One question.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// Who acts.
    pub actor: Party<'a>,
    /// Who it acts for, nearest first; each must be allowed too.
    pub delegators: Vec<Party<'a>>,
    /// The action's name.
    pub action: &'a str,
    /// The caller's `action.properties`: `context.action` (the schema has
    /// no attributes for actions).
    pub action_properties: Option<&'a Map<String, Value>>,
    /// The caller's `subject.properties`. For a directory subject they fill
    /// the attributes the directory does not set (the directory is
    /// authoritative for who a subject is); for an agent (or token) subject
    /// they are `context.subject`, beside the registry's attributes, which
    /// callers cannot change.
    pub subject_properties: Option<&'a Map<String, Value>>,
    /// On what.
    pub resource: Target<'a>,
    /// The caller's context attributes.
    pub context: &'a Map<String, Value>,
    /// When.
    pub now: Timestamp,
    /// From where.
    pub source_ip: Option<IpAddr>,
    /// Present when the subject was an access token: the action must be
    /// within its scopes.
    pub token: Option<&'a TokenFacts>,
}

/// The answer for one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reasons")]
pub enum Outcome {
    /// Permitted.
    Allow,
    /// Not permitted (default deny, a forbid, or a rule outside policy).
    Deny,
    /// Permitted only after a human approves; the policies' reasons.
    RequiresApproval(Vec<String>),
}

/// How one party fared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartyDecision {
    /// `Type::"id"`.
    pub party: String,
    /// Its outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The policies that determined it.
    pub determining: Vec<String>,
    /// Policies that failed to evaluate (an erroring forbid denies).
    pub errors: Vec<String>,
    /// A rule outside policy that decided, e.g. `agent_not_active`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Deny if any party is denied; else approval if any needs it; else allow.
    pub outcome: Outcome,
    /// Each party, the actor first.
    pub parties: Vec<PartyDecision>,
}

impl Decision {
    /// Whether the request may go ahead now.
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }
}

/// What the policies let one agent do ([`Engine::permitted`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permitted {
    /// Actions some permit gives it outright.
    pub actions: BTreeSet<String>,
    /// Actions permitted only under a condition or after approval.
    pub conditional: BTreeSet<String>,
    /// Each of those actions with the ids of the permits that give it.
    pub policies: BTreeMap<String, BTreeSet<String>>,
}

/// A request the engine cannot evaluate as given.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A context or property value has no Cedar form.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The caller set a context key the server owns.
    #[error("`context.{0}` is set by the server and may not be supplied")]
    Reserved(String),
}

impl QueryError {
    /// The request field it is about (`context.amount`, `resource.properties.owner`).
    pub fn field(&self) -> String {
        match self {
            QueryError::Value(v) => v.path.clone(),
            QueryError::Reserved(k) => format!("context.{k}"),
        }
    }
}

/// A tenant's compiled authorization state.
#[derive(Debug)]
pub struct Engine {
    compiled: Arc<Compiled>,
    version: i64,
    authorizer: Authorizer,
    /// Policies that may apply, by action, indexed by principal scope.
    slices: HashMap<EntityUid, Slice>,
    /// Policy sets by action and the indexed principal scopes a principal
    /// hits: built on first use (most principals share a handful).
    sets: RwLock<HashMap<SetKey, Arc<PolicySet>>>,
    /// Every entity's ancestors (directory memberships and grants), flattened.
    ancestors: HashMap<EntityUid, HashSet<EntityUid>>,
    /// Directory entities: attributes as given, for overlaying request properties.
    directory: HashMap<EntityUid, Map<String, Value>>,
    /// Actions of each role (generated roles for single permissions included).
    role_actions: HashMap<String, BTreeSet<String>>,
    /// Policies with a `when` or `unless` clause (or no JSON form): they
    /// hold only when their condition does.
    conditional: HashSet<PolicyId>,
    /// Attribute names some policy reads (`.name`, `has name`); stored
    /// attributes outside it are left off the entities a decision builds.
    /// `None`: keep every attribute.
    read_attrs: Option<HashSet<String>>,
    valid_until: Option<Timestamp>,
    warnings: Vec<String>,
}

/// The policies of one action: those any principal may match, and those
/// whose principal scope names an entity (`principal in Role::"x"`,
/// `principal == Agent::"y"`), by that entity. A principal can only match
/// the latter through itself or one of its ancestors.
#[derive(Debug, Default)]
struct Slice {
    generic: Vec<Policy>,
    by_principal: HashMap<EntityUid, Vec<Policy>>,
}

/// An action and the indexed principal scopes a principal hits.
type SetKey = (EntityUid, Vec<EntityUid>);

/// Most cached policy sets per engine.
const SET_CACHE: usize = 100_000;

/// What an engine is built from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The active version, compiled.
    pub compiled: Arc<Compiled>,
    /// Its number (0: none uploaded, the base schema alone).
    pub version: i64,
    /// The tenant's roles.
    pub roles: &'a [Role],
    /// The tenant's grants (expired ones are left out).
    pub grants: &'a [RoleGrant],
    /// The tenant's directory.
    pub directory: &'a [DirectoryEntity],
    /// When it is built.
    pub now: Timestamp,
}

/// The generated role that holds a single permission.
fn permission_role(action: &str) -> String {
    format!("permission:{action}")
}

fn subject_uid(s: &GrantSubject) -> Option<EntityUid> {
    match s {
        GrantSubject::Agent(id) => entity_uid("Agent", &id.to_string()),
        GrantSubject::Class(n) => entity_uid("Class", n),
        GrantSubject::Group(n) => entity_uid("Group", n),
    }
}

fn ref_uid(r: &EntityRef) -> Option<EntityUid> {
    entity_uid(&r.type_name, &r.id)
}

/// The Cedar text of a conditional grant, or `None` if it gives nothing
/// (an unknown role, or a role without actions).
pub fn grant_policy(grant: &RoleGrant, roles: &[Role]) -> Option<String> {
    let condition = grant.condition.as_deref()?;
    let actions: Vec<String> = match &grant.permission {
        Permission::Role(r) => roles.iter().find(|x| &x.name == r)?.actions.iter().cloned().collect(),
        Permission::Action(a) => vec![a.clone()],
    };
    let list = action_list(&actions)?;
    Some(format!(
        "permit(principal in {}, action in [{list}], resource) when {{ {condition}{CONDITION_END}",
        subject_uid(&grant.subject)?
    ))
}

/// What follows a grant's condition in its policy: on a line of its own, so
/// a `//` comment ending the condition does not swallow it.
pub(crate) const CONDITION_END: &str = "\n};";

fn action_list(actions: &[String]) -> Option<String> {
    let uids: Vec<String> = actions
        .iter()
        .filter_map(|a| action_uid(a))
        .map(|u| u.to_string())
        .collect();
    (!uids.is_empty()).then(|| uids.join(", "))
}

impl Engine {
    /// Builds the engine. Grants that cannot apply (an unknown role, a
    /// condition that no longer parses) are left out and reported in
    /// [`Engine::warnings`].
    pub fn build(inputs: Inputs<'_>) -> Engine {
        let Inputs {
            compiled,
            version,
            roles,
            grants,
            directory,
            now,
        } = inputs;
        let mut warnings = Vec::new();
        let mut policies: Vec<Policy> = compiled.policies.policies().cloned().collect();
        let mut role_actions: HashMap<String, BTreeSet<String>> = HashMap::new();
        for r in roles {
            role_actions.insert(r.name.clone(), r.actions.clone());
            // A role outlives the version it was made under: what this
            // version no longer declares, the role no longer gives.
            for a in r.actions.iter().filter(|a| !compiled.has_action(a)) {
                warnings.push(format!(
                    "role `{}`: action `{a}` is not declared by the active schema and gives nothing",
                    r.name
                ));
            }
            let actions: Vec<String> = r.actions.iter().cloned().collect();
            let (Some(list), Some(role)) = (action_list(&actions), entity_uid("Role", &r.name)) else {
                continue;
            };
            let id = format!("role:{}", r.name);
            match Policy::parse(
                Some(PolicyId::new(&id)),
                format!("permit(principal in {role}, action in [{list}], resource);"),
            ) {
                Ok(p) => policies.push(p),
                Err(e) => warnings.push(format!("role `{}`: {e}", r.name)),
            }
        }
        let mut edges: HashMap<EntityUid, HashSet<EntityUid>> = HashMap::new();
        let mut attrs: HashMap<EntityUid, Map<String, Value>> = HashMap::new();
        for e in directory {
            let Some(uid) = ref_uid(&e.uid) else { continue };
            let parents = edges.entry(uid.clone()).or_default();
            parents.extend(e.parents.iter().filter_map(ref_uid));
            if e.uid.type_name != "Agent" {
                attrs.insert(uid, e.attrs.clone());
            }
        }
        let mut valid_until: Option<Timestamp> = None;
        let mut permissions = BTreeSet::new();
        for g in grants.iter().filter(|g| g.is_live(now)) {
            if let Some(e) = g.expires_at {
                valid_until = Some(valid_until.map_or(e, |v| v.min(e)));
            }
            if let Permission::Action(a) = &g.permission
                && !compiled.has_action(a)
            {
                warnings.push(format!(
                    "grant `{}`: action `{a}` is not declared by the active schema and gives nothing",
                    g.id
                ));
            }
            let Some(subject) = subject_uid(&g.subject) else {
                continue;
            };
            if g.condition.is_some() {
                let id = format!("grant:{}", g.id);
                match grant_policy(g, roles)
                    .map(|text| Policy::parse(Some(PolicyId::new(&id)), text).map_err(|e| e.to_string()))
                {
                    Some(Ok(p)) => policies.push(p),
                    Some(Err(e)) => warnings.push(format!("grant `{}`: {e}", g.id)),
                    None => warnings.push(format!("grant `{}` gives no actions", g.id)),
                }
                continue;
            }
            let role = match &g.permission {
                Permission::Role(r) => {
                    if !role_actions.contains_key(r) {
                        warnings.push(format!("grant `{}` names the unknown role `{r}`", g.id));
                        continue;
                    }
                    r.clone()
                }
                Permission::Action(a) => {
                    permissions.insert(a.clone());
                    permission_role(a)
                }
            };
            if let Some(r) = entity_uid("Role", &role) {
                edges.entry(subject).or_default().insert(r);
            }
        }
        for a in permissions {
            let role = permission_role(&a);
            let (Some(r), Some(act)) = (entity_uid("Role", &role), action_uid(&a)) else {
                continue;
            };
            role_actions.insert(role.clone(), BTreeSet::from([a]));
            if let Ok(p) = Policy::parse(
                Some(PolicyId::new(&role)),
                format!("permit(principal in {r}, action == {act}, resource);"),
            ) {
                policies.push(p);
            }
        }
        let read_attrs = read_attributes(&policies);
        let conditional = policies
            .iter()
            .filter(|p| {
                p.to_json()
                    .ok()
                    .and_then(|j| j.get("conditions").and_then(Value::as_array).map(Vec::is_empty))
                    != Some(true)
            })
            .map(|p| p.id().clone())
            .collect();
        let mut slices = HashMap::new();
        for (action, groups) in &compiled.actions {
            let mut slice = Slice::default();
            for p in policies.iter().filter(|p| may_apply(&p.action_constraint(), groups)) {
                match p.principal_constraint() {
                    PrincipalConstraint::Any | PrincipalConstraint::Is(_) => slice.generic.push(p.clone()),
                    PrincipalConstraint::In(u) | PrincipalConstraint::Eq(u) | PrincipalConstraint::IsIn(_, u) => {
                        slice.by_principal.entry(u).or_default().push(p.clone());
                    }
                }
            }
            slices.insert(action.clone(), slice);
        }
        Engine {
            compiled,
            version,
            authorizer: Authorizer::new(),
            slices,
            sets: RwLock::new(HashMap::new()),
            ancestors: flatten(&edges),
            directory: attrs,
            role_actions,
            conditional,
            read_attrs,
            valid_until,
            warnings,
        }
    }

    /// The approval rule of a decision that needs approval, from its
    /// determining policies (their `@approvers` and `@approvals`, combined:
    /// every approver constraint, the largest count).
    pub fn approval_rule<'a>(&self, determining: impl IntoIterator<Item = &'a String>) -> ApprovalRule {
        let rules: Vec<&ApprovalRule> = determining
            .into_iter()
            .filter_map(|id| self.compiled.approval_rules.get(&PolicyId::new(id)))
            .collect();
        ApprovalRule::combine(rules)
    }

    /// The directory groups an entity is in (transitively), by name: for
    /// approvals that need a group's member.
    pub fn groups_of(&self, type_name: &str, id: &str) -> Vec<String> {
        let Some(uid) = entity_uid(type_name, id) else {
            return vec![];
        };
        let mut out: Vec<String> = self
            .ancestors
            .get(&uid)
            .into_iter()
            .flatten()
            .filter(|u| u.type_name().to_string() == "Group")
            .map(|u| u.id().unescaped().to_owned())
            .collect();
        out.sort();
        out
    }

    /// The version it runs.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The compiled version.
    pub fn compiled(&self) -> &Arc<Compiled> {
        &self.compiled
    }

    /// When the earliest grant in it expires (it must be rebuilt by then).
    pub fn valid_until(&self) -> Option<Timestamp> {
        self.valid_until
    }

    /// Grants and roles that could not be applied.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The roles an agent holds (directly, through its class or groups), and
    /// the actions they give: the data view of "what may this agent do".
    /// Conditional grants are not included (they hold only when their
    /// condition does).
    pub fn granted(&self, agent: &Agent) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut roles = BTreeSet::new();
        let mut actions = BTreeSet::new();
        let Some(uid) = entity_uid("Agent", &agent.id.to_string()) else {
            return (roles, actions);
        };
        for p in self.agent_parents(agent, &uid) {
            if p.type_name().to_string() != "Role" {
                continue;
            }
            let name = p.id().unescaped().to_owned();
            if let Some(a) = self.role_actions.get(&name) {
                actions.extend(a.iter().cloned());
            }
            if !name.starts_with("permission:") {
                roles.insert(name);
            }
        }
        (roles, actions)
    }

    /// What the policies let an agent do, by action: every permit whose
    /// principal scope names the agent, its class, or a role or group it is
    /// in (`principal in Role::"auditor"`), and every permit open to all
    /// agents (`principal`, `principal is Agent`), for the actions whose
    /// schema admits an `Agent` principal. Roles and grants count through the
    /// policies they generate. An action is in [`Permitted::actions`] when
    /// some such permit has no condition and needs no approval (it may still
    /// name its resources), and in [`Permitted::conditional`] when every such
    /// permit has a condition or needs approval. A forbid with no condition
    /// and no resource scope that applies to the agent removes the action.
    pub fn permitted(&self, agent: &Agent) -> Permitted {
        let mut out = Permitted::default();
        let Some(uid) = entity_uid("Agent", &agent.id.to_string()) else {
            return out;
        };
        let mut scopes = self.agent_parents(agent, &uid);
        scopes.insert(uid);
        let is_agent = |t: &cedar_policy::EntityTypeName| t.to_string() == "Agent";
        for (action, slice) in &self.slices {
            let for_agents = self
                .compiled
                .schema
                .principals_for_action(action)
                .is_some_and(|mut ts| ts.any(is_agent));
            if !for_agents {
                continue;
            }
            let applies = |p: &&Policy| match p.principal_constraint() {
                PrincipalConstraint::Any => true,
                PrincipalConstraint::Is(t) => is_agent(&t),
                PrincipalConstraint::In(u) | PrincipalConstraint::Eq(u) => scopes.contains(&u),
                PrincipalConstraint::IsIn(t, u) => is_agent(&t) && scopes.contains(&u),
            };
            let policies: Vec<&Policy> = slice
                .generic
                .iter()
                .chain(scopes.iter().filter_map(|u| slice.by_principal.get(u)).flatten())
                .filter(applies)
                .collect();
            let unconditional = |p: &&&Policy| {
                !self.conditional.contains(p.id()) && p.resource_constraint() == cedar_policy::ResourceConstraint::Any
            };
            let forbidden = policies
                .iter()
                .filter(|p| p.effect() == Effect::Forbid)
                .any(|p| unconditional(&p));
            let permits: Vec<&&Policy> = policies.iter().filter(|p| p.effect() == Effect::Permit).collect();
            if permits.is_empty() || forbidden {
                continue;
            }
            let name = action.id().unescaped().to_owned();
            let free = permits
                .iter()
                .any(|p| !self.conditional.contains(p.id()) && !self.compiled.approvals.contains_key(p.id()));
            if free {
                out.actions.insert(name.clone());
            } else {
                out.conditional.insert(name.clone());
            }
            out.policies
                .entry(name)
                .or_default()
                .extend(permits.iter().map(|p| p.id().to_string()));
        }
        out
    }

    fn agent_parents(&self, a: &Agent, uid: &EntityUid) -> HashSet<EntityUid> {
        let class = a.class.as_deref().and_then(|c| entity_uid("Class", c));
        let mut parents = HashSet::new();
        for d in std::iter::once(uid).chain(&class) {
            if let Some(up) = self.ancestors.get(d) {
                parents.extend(up.iter().cloned());
            }
        }
        // The class itself is a parent; the agent is not its own.
        parents.extend(class);
        parents
    }

    /// Whether some policy reads an attribute (or context key) of this name:
    /// one no policy reads cannot change a decision, so it is left off.
    fn reads(&self, name: &str) -> bool {
        self.read_attrs.as_ref().is_none_or(|r| r.contains(name))
    }

    /// An agent as a Cedar entity, and its ancestors.
    fn agent(&self, a: &Agent) -> Option<(Entity, HashSet<EntityUid>)> {
        let uid = entity_uid("Agent", &a.id.to_string())?;
        let parents = self.agent_parents(a, &uid);
        let read = |name: &str| self.reads(name);
        let string =
            |name: &str, v: &str| read(name).then(|| (name.to_owned(), RestrictedExpression::new_string(v.to_owned())));
        let mut attrs: HashMap<String, RestrictedExpression> = [
            string("name", &a.name),
            string("status", a.status.as_str()),
            string("owner", &a.owner),
            a.environment.and_then(|e| string("environment", e.as_str())),
            a.class.as_deref().and_then(|c| string("class", c)),
            a.team.as_deref().and_then(|t| string("team", t)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if read("labels") {
            let labels = a
                .labels
                .iter()
                .map(|(k, v)| RestrictedExpression::new_string(format!("{k}={v}")));
            attrs.insert("labels".to_owned(), RestrictedExpression::new_set(labels));
        }
        if read("capabilities") {
            let caps = a.capabilities.iter().cloned().map(RestrictedExpression::new_string);
            attrs.insert("capabilities".to_owned(), RestrictedExpression::new_set(caps));
        }
        let entity = Entity::new(uid, attrs, parents.clone()).ok()?;
        Some((entity, parents))
    }

    /// A directory entity (or a bare one), with `properties` over or under
    /// its stored attributes.
    fn other_entity(
        &self,
        r: &EntityRef,
        properties: Option<&Map<String, Value>>,
        path: &str,
        overlay: Overlay,
    ) -> Result<Option<Entity>, QueryError> {
        let Some(uid) = ref_uid(r) else { return Ok(None) };
        let mut attrs = HashMap::new();
        // Stored attributes were checked when they were put; only those a
        // policy reads are needed. Request properties are all checked.
        for (k, v) in self.directory.get(&uid).into_iter().flatten() {
            if self.reads(k) {
                attrs.insert(k.clone(), to_cedar(v, || format!("{path}.{k}"))?);
            }
        }
        for (k, v) in properties.into_iter().flatten() {
            let v = to_cedar(v, || format!("{path}.{k}"))?;
            match overlay {
                Overlay::Over => {
                    attrs.insert(k.clone(), v);
                }
                Overlay::Under => {
                    attrs.entry(k.clone()).or_insert(v);
                }
            }
        }
        let parents = self.ancestors.get(&uid).cloned().unwrap_or_default();
        Ok(Entity::new(uid, attrs, parents).ok())
    }

    /// The ids of the directory's entities of one type (those stored and
    /// those that only appear as a parent), sorted: the candidates of an
    /// AuthZEN search for that type.
    pub fn entity_ids(&self, type_name: &str) -> BTreeSet<String> {
        self.directory
            .keys()
            .chain(self.ancestors.keys())
            .chain(self.ancestors.values().flatten())
            .filter(|u| u.type_name().to_string() == type_name)
            .map(|u| u.id().unescaped().to_owned())
            .collect()
    }

    fn known(&self, r: &EntityRef) -> bool {
        r.type_name == "Human"
            || ref_uid(r).is_some_and(|u| self.directory.contains_key(&u) || self.ancestors.contains_key(&u))
    }

    /// Decides a query. Deny unless every party is permitted; suspended,
    /// retired and not-yet-active agents are always denied.
    pub fn decide(&self, q: &Query<'_>) -> Result<Decision, QueryError> {
        let mut base: Vec<(String, RestrictedExpression)> = Vec::with_capacity(q.context.len() + 6);
        for (k, v) in q.context {
            if RESERVED_CONTEXT.contains(&k.as_str()) {
                return Err(QueryError::Reserved(k.clone()));
            }
            // Checked even when no policy reads it: bad input is refused alike.
            let v = to_cedar(v, || format!("context.{k}"))?;
            if self.reads(k) {
                base.push((k.clone(), v));
            }
        }
        if let Some(p) = q.action_properties {
            let v = to_cedar(&Value::Object(p.clone()), || "action.properties".to_owned())?;
            if self.reads("action") {
                base.push(("action".into(), v));
            }
        }
        if let (Some(p), Party::Agent(_)) = (q.subject_properties, q.actor) {
            let v = to_cedar(&Value::Object(p.clone()), || "subject.properties".to_owned())?;
            if self.reads("subject") {
                base.push(("subject".into(), v));
            }
        }
        let secs = q.now.as_micros().div_euclid(1_000_000);
        if self.reads("now") {
            base.push(("now".into(), RestrictedExpression::new_long(secs)));
        }
        if self.reads("hour") {
            base.push((
                "hour".into(),
                RestrictedExpression::new_long(secs.rem_euclid(86_400) / 3_600),
            ));
        }
        if self.reads("weekday") {
            // 1970-01-01 was a Thursday (ISO weekday 4).
            base.push((
                "weekday".into(),
                RestrictedExpression::new_long((secs.div_euclid(86_400) + 3).rem_euclid(7) + 1),
            ));
        }
        if let Some(ip) = q.source_ip
            && self.reads("source_ip")
        {
            base.push(("source_ip".into(), RestrictedExpression::new_ip(ip.to_string())));
        }
        if let Some(t) = q.token
            && self.reads("token")
        {
            let set = |s: &BTreeSet<String>| {
                RestrictedExpression::new_set(s.iter().cloned().map(RestrictedExpression::new_string))
            };
            let token = RestrictedExpression::new_record([
                ("scopes".to_owned(), set(&t.scopes)),
                ("task_types".to_owned(), set(&t.task_types)),
                ("delegators".to_owned(), RestrictedExpression::new_long(t.delegators)),
            ])
            .map_err(|e| ValueError {
                path: "context.token".into(),
                reason: e.to_string(),
            })?;
            base.push(("token".into(), token));
        }
        let resource = match q.resource {
            Target::Agent(a) => self.agent(a).map(|(e, _)| e),
            Target::Entity { uid, properties } => {
                if self.compiled.has_entity_type(&uid.type_name) {
                    self.other_entity(uid, properties, "resource.properties", Overlay::Over)?
                } else {
                    None
                }
            }
        };
        let action = action_uid(q.action).filter(|a| self.slices.contains_key(a));
        // Fail closed: an agent that may not act may not be called either
        // (its credentials are suspended or revoked), whatever the policies say.
        let callee_inactive = matches!(q.resource, Target::Agent(c) if c.status != Status::Active);
        let mut parties = Vec::with_capacity(1 + q.delegators.len());
        let all = std::iter::once((q.actor, "actor")).chain(q.delegators.iter().map(|d| (*d, "delegator")));
        for (party, role) in all {
            let d = match (&action, &resource) {
                (None, _) => refused(party_name(party), "unknown_action"),
                (_, None) => refused(party_name(party), "unknown_resource_type"),
                (Some(action), Some(resource)) => {
                    let d = self.decide_party(party, role, action, resource, &base, q)?;
                    // A party refused on its own keeps its own reason.
                    if callee_inactive && d.outcome != Outcome::Deny {
                        refused(party_name(party), "callee_not_active")
                    } else {
                        d
                    }
                }
            };
            parties.push(d);
        }
        let outcome = if parties.iter().any(|p| p.outcome == Outcome::Deny) {
            Outcome::Deny
        } else {
            let reasons: Vec<String> = parties
                .iter()
                .filter_map(|p| match &p.outcome {
                    Outcome::RequiresApproval(r) => Some(r.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            if parties
                .iter()
                .any(|p| matches!(p.outcome, Outcome::RequiresApproval(_)))
            {
                Outcome::RequiresApproval(reasons)
            } else {
                Outcome::Allow
            }
        };
        Ok(Decision { outcome, parties })
    }

    fn decide_party(
        &self,
        party: Party<'_>,
        role: &str,
        action: &EntityUid,
        resource: &Entity,
        base: &[(String, RestrictedExpression)],
        q: &Query<'_>,
    ) -> Result<PartyDecision, QueryError> {
        let name = party_name(party);
        let (principal, ancestors) = match party {
            Party::Agent(a) => {
                if a.status != Status::Active {
                    return Ok(refused(name, "agent_not_active"));
                }
                match self.agent(a) {
                    Some((e, parents)) => (Some(e), parents),
                    None => (None, HashSet::new()),
                }
            }
            Party::Entity(r) => {
                if !self.known(r) {
                    return Ok(refused(name, "unknown_subject"));
                }
                let ancestors = ref_uid(r)
                    .and_then(|u| self.ancestors.get(&u).cloned())
                    .unwrap_or_default();
                // Only the actor is the request's subject: delegators have
                // no caller-supplied properties.
                let props = if role == "actor" { q.subject_properties } else { None };
                (
                    self.other_entity(r, props, "subject.properties", Overlay::Under)?,
                    ancestors,
                )
            }
        };
        let Some(principal) = principal else {
            return Ok(refused(name, "unknown_subject"));
        };
        if let Some(t) = q.token
            && role == "actor"
            && !self
                .compiled
                .actions
                .get(action)
                .is_some_and(|groups| groups.iter().any(|g| t.scopes.contains(g.id().unescaped())))
        {
            return Ok(refused(name, "scope"));
        }
        let mut ctx = base.to_vec();
        if self.reads("role") {
            ctx.push(("role".into(), RestrictedExpression::new_string(role.to_owned())));
        }
        let context = Context::from_pairs(ctx).map_err(|e| ValueError {
            path: "context".into(),
            reason: e.to_string(),
        })?;
        let Some(slice) = self.policy_set(action, &principal.uid(), &ancestors) else {
            return Ok(refused(name, "unknown_action"));
        };
        let slice = &*slice;
        let Ok(request) = Request::new(principal.uid(), action.clone(), resource.uid(), context, None) else {
            return Ok(refused(name, "invalid_request"));
        };
        let mut entities = Vec::with_capacity(3);
        entities.push(&principal);
        if principal.uid() != resource.uid() {
            entities.push(resource);
        }
        if let Some(a) = self.compiled.action_entities.get(action) {
            entities.push(a);
        }
        let Some(entities) = closed_entities(&entities) else {
            return Ok(refused(name, "invalid_entities"));
        };
        let response = self.authorizer.is_authorized(&request, slice, &entities);
        let mut determining: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
        // Cedar keeps them in a hash set: one order for identical requests.
        determining.sort_unstable();
        let mut errors = Vec::new();
        let mut forbid_failed = Vec::new();
        for e in response.diagnostics().errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            let id = e.policy_id();
            errors.push(e.to_string());
            if slice.policy(id).is_some_and(|p| p.effect() == Effect::Forbid) {
                forbid_failed.push(id.to_string());
            }
        }
        // Fail closed: a forbid that could not be evaluated counts as applying.
        let outcome = if !forbid_failed.is_empty() {
            return Ok(PartyDecision {
                party: name,
                outcome: Outcome::Deny,
                determining: forbid_failed,
                errors,
                reason: Some("forbid_error".into()),
            });
        } else if response.decision() == CedarDecision::Allow {
            let approvals: Vec<String> = determining
                .iter()
                .filter_map(|id| self.compiled.approvals.get(id).cloned())
                .collect();
            if approvals.len() == determining.len() {
                Outcome::RequiresApproval(approvals)
            } else {
                Outcome::Allow
            }
        } else {
            Outcome::Deny
        };
        Ok(PartyDecision {
            party: name,
            outcome,
            determining: determining.iter().map(ToString::to_string).collect(),
            errors,
            reason: None,
        })
    }
}

impl Engine {
    /// The policies of `action` that `principal` can match: the action's
    /// generic ones and those scoped to the principal or an ancestor.
    fn policy_set(
        &self,
        action: &EntityUid,
        uid: &EntityUid,
        ancestors: &HashSet<EntityUid>,
    ) -> Option<Arc<PolicySet>> {
        let slice = self.slices.get(action)?;
        let mut hits: Vec<EntityUid> = std::iter::once(uid)
            .chain(ancestors.iter())
            .filter(|u| slice.by_principal.contains_key(*u))
            .cloned()
            .collect();
        hits.sort();
        let key = (action.clone(), hits);
        if let Ok(m) = self.sets.read()
            && let Some(s) = m.get(&key)
        {
            return Some(s.clone());
        }
        let policies = slice
            .generic
            .iter()
            .chain(key.1.iter().filter_map(|u| slice.by_principal.get(u)).flatten())
            .cloned();
        // Ids are unique within an engine, so this cannot fail; an empty set
        // (deny) is the safe answer if it somehow did.
        let set = Arc::new(PolicySet::from_policies(policies).unwrap_or_else(|_| PolicySet::new()));
        if let Ok(mut m) = self.sets.write()
            && m.len() < SET_CACHE
        {
            m.insert(key, set.clone());
        }
        Some(set)
    }
}

/// Whether request properties win over stored attributes (a resource: the
/// PEP holds its current state) or only fill what is not stored (a subject:
/// the directory is authoritative for who it is).
#[derive(Clone, Copy, Debug)]
enum Overlay {
    Over,
    Under,
}

fn party_name(p: Party<'_>) -> String {
    match p {
        Party::Agent(a) => format!("Agent::\"{}\"", a.id),
        Party::Entity(r) => format!("{}::{:?}", r.type_name, r.id),
    }
}

fn refused(party: String, reason: &str) -> PartyDecision {
    PartyDecision {
        party,
        outcome: Outcome::Deny,
        determining: vec![],
        errors: vec![],
        reason: Some(reason.to_owned()),
    }
}

/// Every attribute name the policies read (`.name`, `has name`, in their
/// JSON form), or `None` (nothing is left off) if some policy has no JSON
/// form or uses `context` as a whole (`context == {…}` sees every key).
fn read_attributes(policies: &[Policy]) -> Option<HashSet<String>> {
    /// `false` if `context` is used other than through `.name` or `has name`.
    fn walk(v: &Value, out: &mut HashSet<String>) -> bool {
        match v {
            Value::Object(m) => {
                if m.get("Var").and_then(Value::as_str) == Some("context") {
                    return false;
                }
                for (k, x) in m {
                    if let ("." | "has", Some(access)) = (k.as_str(), x.as_object())
                        && let Some(Value::String(name)) = access.get("attr")
                    {
                        out.insert(name.clone());
                        let left = access.get("left").unwrap_or(&Value::Null);
                        if left.get("Var").and_then(Value::as_str) != Some("context") && !walk(left, out) {
                            return false;
                        }
                        continue;
                    }
                    if !walk(x, out) {
                        return false;
                    }
                }
                true
            }
            Value::Array(items) => items.iter().all(|x| walk(x, out)),
            _ => true,
        }
    }
    let mut out = HashSet::new();
    for p in policies {
        if !walk(&p.to_json().ok()?, &mut out) {
            return None;
        }
    }
    Some(out)
}

/// A request's entities as Cedar's store. Cedar's public constructor
/// recomputes the transitive closure of their ancestors and checks it for
/// cycles on every call: measured, more CPU than Cedar's evaluation. The
/// engine only ever gives ancestor sets that are already closed (agents and
/// directory entities from [`flatten`], actions from the schema's own
/// hierarchy), so Cedar's core constructor is told so
/// (`TCComputation::AssumeAlreadyComputed`); `in` tests read those sets.
/// Cycles in the directory cannot hang it: nothing walks the hierarchy.
/// `None` if Cedar refuses them (two entities with one uid).
fn closed_entities(list: &[&Entity]) -> Option<Entities> {
    cedar_policy_core::entities::Entities::from_entities(
        list.iter()
            .map(|e| AsRef::<cedar_policy_core::ast::Entity>::as_ref(*e).clone()),
        None::<&cedar_policy_core::entities::NoEntitiesSchema>,
        cedar_policy_core::entities::TCComputation::AssumeAlreadyComputed,
        cedar_policy_core::extensions::Extensions::all_available(),
    )
    .ok()
    .map(Entities::from)
}

/// Every node's ancestors, transitively (cycles are harmless).
fn flatten(edges: &HashMap<EntityUid, HashSet<EntityUid>>) -> HashMap<EntityUid, HashSet<EntityUid>> {
    let mut out = HashMap::with_capacity(edges.len());
    for start in edges.keys() {
        let mut seen: HashSet<EntityUid> = HashSet::new();
        let mut queue: VecDeque<&EntityUid> = edges.get(start).into_iter().flatten().collect();
        while let Some(n) = queue.pop_front() {
            if seen.insert(n.clone())
                && let Some(next) = edges.get(n)
            {
                queue.extend(next.iter());
            }
        }
        seen.remove(start);
        out.insert(start.clone(), seen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_attributes_are_those_accessed_or_tested() {
        let text = r#"
            permit(principal, action, resource) when { principal has team && resource.owner == principal.owner };
            forbid(principal, action, resource) when { context.risk.level > 3 };
        "#;
        let set: cedar_policy::PolicySet = text.parse().expect("policies parse");
        let policies: Vec<Policy> = set.policies().cloned().collect();
        let read = read_attributes(&policies).expect("every policy has a JSON form");
        let want: HashSet<String> = ["team", "owner", "risk", "level"].map(String::from).into();
        assert_eq!(read, want);
        // `context` as a whole sees every key: nothing may be left off.
        let whole: cedar_policy::PolicySet = r#"permit(principal, action, resource) when { context == {"a": 1} };"#
            .parse()
            .expect("policy parses");
        assert_eq!(read_attributes(&whole.policies().cloned().collect::<Vec<_>>()), None);
    }
}
