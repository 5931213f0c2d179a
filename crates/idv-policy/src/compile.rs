//! A policy version: the tenant's Cedar policies and schema fragment, parsed
//! and validated against IdentityVault's base schema. A version that
//! compiles is immutable; engines are built from it.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Effect, Entities, Entity, EntityUid, Expression, Policy, PolicyId, PolicySet, Schema,
    SchemaFragment, ValidationMode, Validator,
};
use idv_core::approval::{ApprovalRule, Approvers, MAX_REQUIRED};
use idv_core::role::{Role, RoleGrant};

use crate::engine;
use crate::shape::{self, Kind};
use miette::Diagnostic;
use serde::Serialize;

/// IdentityVault's base schema (`policies/idv.cedarschema`).
pub const BASE_SCHEMA: &str = include_str!("../../../policies/idv.cedarschema");

/// The annotation that marks a permit as needing human approval; its value
/// says why (e.g. `@requires_approval("transfers above 10,000")`).
pub const REQUIRES_APPROVAL: &str = "requires_approval";

/// Beside [`REQUIRES_APPROVAL`]: who may approve, `owner` (the agent's
/// owner), `group:<name>` (a member of a directory group) or `any` (the
/// default).
pub const APPROVERS: &str = "approvers";

/// Beside [`REQUIRES_APPROVAL`]: how many distinct people must approve,
/// `1` (the default) or `2`.
pub const APPROVALS: &str = "approvals";

/// Limits on what a version may hold.
pub mod limits {
    /// Largest policy text, in bytes.
    pub const POLICY_TEXT: usize = 1024 * 1024;
    /// Largest schema fragment, in bytes.
    pub const SCHEMA_TEXT: usize = 256 * 1024;
}

/// Which text a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The Cedar policies.
    Policies,
    /// The tenant's schema fragment.
    Schema,
    /// A grant's condition (the body of its `when { … }`).
    Condition,
}

/// Why a version does not compile, with a position where there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Which text.
    pub source: Source,
    /// What is wrong.
    pub message: String,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column (in characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The policy it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
}

impl Problem {
    pub(crate) fn new(source: Source, message: impl Into<String>) -> Self {
        Self {
            source,
            message: message.into(),
            line: None,
            column: None,
            policy_id: None,
        }
    }

    /// One problem per labelled position of a Cedar diagnostic (or one
    /// without a position).
    fn from_diagnostic(source: Source, text: &str, d: &dyn Diagnostic, policy_id: Option<String>) -> Self {
        let mut message = d.to_string();
        if let Some(help) = d.help() {
            message = format!("{message} ({help})");
        }
        // A label is an offset into the diagnostic's own source, which for
        // an error found while merging schema fragments may be another
        // fragment (the base schema): a position only if it is `text`.
        let offset = d
            .labels()
            .and_then(|mut l| l.next())
            .filter(|_| d.source_code().is_none() || source_is(d, text))
            .map(|l| l.offset());
        let (line, column) = match offset {
            Some(o) => {
                let (l, c) = position(text, o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Self {
            source,
            message,
            line,
            column,
            policy_id,
        }
    }
}

/// Whether `d`'s source text is `text`.
fn source_is(d: &dyn Diagnostic, text: &str) -> bool {
    let whole = miette::SourceSpan::from((0, text.len()));
    d.source_code()
        .and_then(|src| src.read_span(&whole, 0, 0).ok())
        .is_some_and(|s| s.data() == text.as_bytes())
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn position(text: &str, offset: usize) -> (u32, u32) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// A version that compiled: schema, policies (ids from `@id` annotations),
/// and the action hierarchy.
#[derive(Debug)]
pub struct Compiled {
    pub(crate) schema: Schema,
    pub(crate) policies: PolicySet,
    /// Policy id → why it needs approval.
    pub(crate) approvals: HashMap<PolicyId, String>,
    /// Policy id → who may approve and how many must.
    pub(crate) approval_rules: HashMap<PolicyId, ApprovalRule>,
    /// Every action with itself and its ancestor groups.
    pub(crate) actions: HashMap<EntityUid, HashSet<EntityUid>>,
    /// The action entities, one cloned into each request.
    pub(crate) action_entities: HashMap<EntityUid, Entity>,
    /// Declared entity type names.
    entity_types: HashSet<String>,
}

impl Compiled {
    /// The ids of the version's policies, in text order.
    pub fn policy_ids(&self) -> Vec<String> {
        self.policies.policies().map(|p| p.id().to_string()).collect()
    }

    /// Whether `action` (its name, e.g. `transfer`) is declared.
    pub fn has_action(&self, action: &str) -> bool {
        action_uid(action).is_some_and(|a| self.actions.contains_key(&a))
    }

    /// Whether `name` is a declared entity type.
    pub fn has_entity_type(&self, name: &str) -> bool {
        self.entity_types.contains(name)
    }

    /// Whether the schema lets an entity of type `child` be `in` one of
    /// type `parent` (directly or through the types it is in).
    pub fn may_be_in(&self, child: &str, parent: &str) -> bool {
        cedar_policy::EntityTypeName::from_str(child).is_ok_and(|c| {
            self.schema
                .ancestors(&c)
                .is_some_and(|mut up| up.any(|t| t.to_string() == parent))
        })
    }

    /// Names of the declared actions, sorted.
    pub fn action_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.actions.keys().map(|a| a.id().unescaped().to_owned()).collect();
        v.sort();
        v
    }

    /// `action` and the groups it belongs to, by name.
    pub fn action_and_groups(&self, action: &str) -> Vec<String> {
        action_uid(action)
            .and_then(|a| self.actions.get(&a))
            .map(|s| s.iter().map(|a| a.id().unescaped().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Whether a conditional grant is valid against this version's schema,
    /// with each problem's position in the grant's condition (where it has
    /// one there): the user wrote the condition, not the policy around it.
    pub fn validate_grant(&self, grant: &RoleGrant, roles: &[Role]) -> Result<(), Vec<Problem>> {
        let (Some(condition), Some(text)) = (grant.condition.as_deref(), crate::engine::grant_policy(grant, roles))
        else {
            return Ok(());
        };
        shape::check(condition, Kind::Expression, Source::Condition).map_err(|p| vec![p])?;
        // One expression and nothing else: the policy it goes into must
        // not be closed, extended or commented out from inside it.
        if let Err(e) = Expression::from_str(condition) {
            return Err(vec![Problem::from_diagnostic(Source::Condition, condition, &e, None)]);
        }
        // INVARIANT: `grant_policy` ends with `when { <condition>\n};`, the
        // condition starting on line 1 at `start`.
        let start = text.len().saturating_sub(condition.len() + engine::CONDITION_END.len());
        let prefix_chars = text.get(..start).map_or(0, |p| p.chars().count());
        let start_col = u32::try_from(prefix_chars + 1).unwrap_or(u32::MAX);
        let lines: Vec<usize> = condition.split('\n').map(|l| l.chars().count()).collect();
        self.validate_extra(&format!("grant:{}", grant.id), &text)
            .map(|_| ())
            .map_err(|problems| {
                problems
                    .into_iter()
                    .map(|p| {
                        let at = match (p.line, p.column) {
                            (Some(1), Some(c)) => c.checked_sub(start_col).map(|c| (1, c + 1)),
                            (Some(l), Some(c)) => Some((l, c)),
                            _ => None,
                        }
                        // Past the condition's end (the closing `}`): no position in it.
                        .filter(|&(l, c)| {
                            l.checked_sub(1)
                                .and_then(|i| usize::try_from(i).ok())
                                .and_then(|i| lines.get(i))
                                .is_some_and(|&n| usize::try_from(c).is_ok_and(|c| c <= n + 1))
                        });
                        Problem {
                            source: Source::Condition,
                            line: at.map(|a| a.0),
                            column: at.map(|a| a.1),
                            ..p
                        }
                    })
                    .collect()
            })
    }

    /// Whether a policy text would be valid next to this version's schema.
    fn validate_extra(&self, id: &str, text: &str) -> Result<Policy, Vec<Problem>> {
        let policy = Policy::parse(Some(PolicyId::new(id)), text).map_err(|errs| {
            errs.iter()
                .map(|e| Problem::from_diagnostic(Source::Policies, text, e, Some(id.to_owned())))
                .collect::<Vec<_>>()
        })?;
        let mut set = PolicySet::new();
        set.add(policy.clone())
            .map_err(|e| vec![Problem::new(Source::Policies, e.to_string())])?;
        let result = Validator::new(self.schema.clone()).validate(&set, ValidationMode::Strict);
        let problems: Vec<Problem> = result
            .validation_errors()
            .map(|e| Problem::from_diagnostic(Source::Policies, text, e, Some(id.to_owned())))
            .collect();
        if problems.is_empty() { Ok(policy) } else { Err(problems) }
    }
}

/// `Action::"<name>"`.
pub(crate) fn action_uid(name: &str) -> Option<EntityUid> {
    entity_uid("Action", name)
}

/// `<type>::"<id>"`, or `None` if `type_name` is not a valid Cedar type name.
pub(crate) fn entity_uid(type_name: &str, id: &str) -> Option<EntityUid> {
    let t = cedar_policy::EntityTypeName::from_str(type_name).ok()?;
    Some(EntityUid::from_type_name_and_id(t, cedar_policy::EntityId::new(id)))
}

/// Parses and validates a version sent by a caller. Every problem is
/// reported, each with a position where Cedar gives one; text of a shape
/// Cedar cannot parse safely ([`crate::shape`]) is refused first.
pub fn compile(policies: &str, schema_fragment: Option<&str>) -> Result<Compiled, Vec<Problem>> {
    shape::check(schema_fragment.unwrap_or(""), Kind::Schema, Source::Schema).map_err(|p| vec![p])?;
    shape::check(policies, Kind::Policies, Source::Policies).map_err(|p| vec![p])?;
    compile_stored(policies, schema_fragment)
}

/// [`compile`] for a version already stored: its shape was checked when it
/// was uploaded, or, stored before shape checks existed, Cedar parsed it then
/// on a thread like this one; a version active before an upgrade keeps
/// working even if it would be refused today.
pub fn compile_stored(policies: &str, schema_fragment: Option<&str>) -> Result<Compiled, Vec<Problem>> {
    if policies.len() > limits::POLICY_TEXT {
        return Err(vec![Problem::new(
            Source::Policies,
            format!("the policy text is larger than {} bytes", limits::POLICY_TEXT),
        )]);
    }
    let fragment_text = schema_fragment.unwrap_or("");
    if fragment_text.len() > limits::SCHEMA_TEXT {
        return Err(vec![Problem::new(
            Source::Schema,
            format!("the schema is larger than {} bytes", limits::SCHEMA_TEXT),
        )]);
    }
    let schema = schema(fragment_text)?;
    let parsed = PolicySet::from_str(policies).map_err(|errs| {
        errs.iter()
            .map(|e| Problem::from_diagnostic(Source::Policies, policies, e, None))
            .collect::<Vec<_>>()
    })?;
    let mut problems = Vec::new();
    if parsed.templates().next().is_some() {
        problems.push(Problem::new(
            Source::Policies,
            "templates (`?principal`, `?resource`) are not accepted in a policy version; grant roles instead",
        ));
    }
    // Stable ids: `@id("…")` where given, else Cedar's positional `policyN`.
    let mut set = PolicySet::new();
    let mut approvals = HashMap::new();
    let mut approval_rules = HashMap::new();
    let mut seen = HashSet::new();
    for p in parsed.policies() {
        let id = p.annotation("id").map_or_else(|| p.id().to_string(), str::to_owned);
        if id.trim().is_empty() {
            problems.push(Problem::new(
                Source::Policies,
                format!("a policy has an empty `@id` (the policy Cedar calls `{}`)", p.id()),
            ));
            continue;
        }
        if id.starts_with("role:") || id.starts_with("grant:") || id.starts_with("permission:") {
            problems.push(Problem {
                policy_id: Some(id.clone()),
                ..Problem::new(
                    Source::Policies,
                    format!(
                        "policy id `{id}` uses a prefix reserved for generated policies (role:, grant:, permission:)"
                    ),
                )
            });
            continue;
        }
        if !seen.insert(id.clone()) {
            problems.push(Problem {
                policy_id: Some(id.clone()),
                ..Problem::new(Source::Policies, format!("two policies have the id `{id}`"))
            });
            continue;
        }
        let pid = PolicyId::new(&id);
        if let Some(why) = p.annotation(REQUIRES_APPROVAL) {
            if p.effect() == Effect::Forbid {
                problems.push(Problem {
                    policy_id: Some(id.clone()),
                    ..Problem::new(
                        Source::Policies,
                        format!("`@{REQUIRES_APPROVAL}` only makes sense on a permit (policy `{id}`)"),
                    )
                });
            }
            approvals.insert(pid.clone(), why.to_owned());
        }
        match approval_rule(p.annotation(APPROVERS), p.annotation(APPROVALS)) {
            Ok(None) => {}
            Ok(Some(_)) if p.annotation(REQUIRES_APPROVAL).is_none() => problems.push(Problem {
                policy_id: Some(id.clone()),
                ..Problem::new(
                    Source::Policies,
                    format!("`@{APPROVERS}` and `@{APPROVALS}` go with `@{REQUIRES_APPROVAL}` (policy `{id}`)"),
                )
            }),
            Ok(Some(rule)) => {
                approval_rules.insert(pid.clone(), rule);
            }
            Err(message) => problems.push(Problem {
                policy_id: Some(id.clone()),
                ..Problem::new(Source::Policies, format!("policy `{id}`: {message}"))
            }),
        }
        if let Err(e) = set.add(p.new_id(pid)) {
            problems.push(Problem::new(Source::Policies, e.to_string()));
        }
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        problems.push(Problem::from_diagnostic(
            Source::Policies,
            policies,
            e,
            Some(e.policy_id().to_string()),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (actions, action_entities) = action_hierarchy(&schema)?;
    let entity_types = schema.entity_types().map(ToString::to_string).collect();
    Ok(Compiled {
        entity_types,
        schema,
        policies: set,
        approvals,
        approval_rules,
        actions,
        action_entities,
    })
}

fn schema(fragment_text: &str) -> Result<Schema, Vec<Problem>> {
    let base = SchemaFragment::from_cedarschema_str(BASE_SCHEMA)
        .map(|(f, _)| f)
        .map_err(|e| vec![Problem::from_diagnostic(Source::Schema, BASE_SCHEMA, &e, None)])?;
    let mut fragments = vec![base];
    if !fragment_text.trim().is_empty() {
        let tenant = SchemaFragment::from_cedarschema_str(fragment_text)
            .map(|(f, _)| f)
            .map_err(|e| vec![Problem::from_diagnostic(Source::Schema, fragment_text, &e, None)])?;
        fragments.push(tenant);
    }
    Schema::from_schema_fragments(fragments).map_err(|e| {
        let mut p = Problem::from_diagnostic(Source::Schema, fragment_text, &e, None);
        if source_is(&e, BASE_SCHEMA) {
            p.message.push_str(" (the base schema declares it: a tenant schema adds types and actions, it cannot redeclare the base's)");
        }
        vec![p]
    })
}

type Actions = (HashMap<EntityUid, HashSet<EntityUid>>, HashMap<EntityUid, Entity>);

fn action_hierarchy(schema: &Schema) -> Result<Actions, Vec<Problem>> {
    let entities: Entities = schema
        .action_entities()
        .map_err(|e| vec![Problem::new(Source::Schema, e.to_string())])?;
    let mut actions = HashMap::new();
    let mut action_entities = HashMap::new();
    for uid in schema.actions() {
        let mut up: HashSet<EntityUid> = entities
            .ancestors(uid)
            .map(|i| i.cloned().collect())
            .unwrap_or_default();
        up.insert(uid.clone());
        actions.insert(uid.clone(), up);
        if let Some(e) = entities.get(uid) {
            action_entities.insert(uid.clone(), e.clone());
        }
    }
    Ok((actions, action_entities))
}

/// A policy's approval rule from its annotations (`None` if it has neither).
fn approval_rule(approvers: Option<&str>, approvals: Option<&str>) -> Result<Option<ApprovalRule>, String> {
    if approvers.is_none() && approvals.is_none() {
        return Ok(None);
    }
    let who = match approvers {
        None => Approvers::Any,
        Some(a) => Approvers::parse(a)
            .ok_or_else(|| format!("`@{APPROVERS}(\"{a}\")` is not `owner`, `group:<name>` or `any`"))?,
    };
    let required = match approvals {
        None => 1,
        Some(n) => n
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=MAX_REQUIRED).contains(n))
            .ok_or_else(|| format!("`@{APPROVALS}(\"{n}\")` is not 1 or {MAX_REQUIRED}"))?,
    };
    Ok(Some(ApprovalRule {
        approvers: vec![who],
        required,
    }))
}

/// Whether a policy's action scope can match `action` (given it and its
/// ancestors): the basis of slicing policy sets by action.
pub(crate) fn may_apply(constraint: &ActionConstraint, action_and_groups: &HashSet<EntityUid>) -> bool {
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => action_and_groups.contains(a),
        ActionConstraint::In(list) => list.iter().any(|a| action_and_groups.contains(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_schema_compiles_with_no_policies() {
        let c = compile("", None).unwrap();
        assert!(c.has_action("transfer"));
        assert!(c.has_entity_type("Agent"));
        assert!(c.policy_ids().is_empty());
    }

    #[test]
    fn ids_come_from_annotations() {
        let c = compile(
            r#"@id("agents-read") permit(principal is Agent, action == Action::"read", resource);
               permit(principal, action == Action::"write", resource);"#,
            None,
        )
        .unwrap();
        assert_eq!(c.policy_ids().len(), 2);
        assert!(c.policy_ids().contains(&"agents-read".to_owned()));
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let text = "permit(principal, action, resource);\npermit(principal action, resource);";
        let errs = compile(text, None).unwrap_err();
        assert!(!errs.is_empty());
        assert_eq!(errs[0].source, Source::Policies);
        assert_eq!(errs[0].line, Some(2), "{errs:?}");
        assert!(errs[0].column.is_some());
    }

    #[test]
    fn validation_errors_name_the_policy_and_position() {
        let text = "@id(\"ok\") permit(principal, action, resource);\n\n@id(\"bad\")\npermit(principal is Agent, action == Action::\"read\", resource) when { principal.nosuch == 1 };";
        let errs = compile(text, None).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].policy_id.as_deref(), Some("bad"));
        assert_eq!(errs[0].line, Some(4), "{errs:?}");
        assert!(errs[0].message.contains("nosuch"), "{errs:?}");
    }

    #[test]
    fn unknown_actions_and_bad_schema_fragments_are_refused() {
        let errs = compile(r#"permit(principal, action == Action::"fly", resource);"#, None).unwrap_err();
        assert!(errs[0].message.contains("fly"), "{errs:?}");
        let errs = compile("", Some("entity Thing {\n  a: Nope\n};")).unwrap_err();
        assert_eq!(errs[0].source, Source::Schema);
        let errs = compile("", Some("entity Thing {")).unwrap_err();
        assert_eq!(errs[0].source, Source::Schema);
        assert_eq!(errs[0].line, Some(1), "{errs:?}");
    }

    #[test]
    fn tenant_actions_join_builtin_groups() {
        let c = compile(
            "",
            Some(r#"action "payments:send" in [Action::"transfer"] appliesTo { principal: [Agent], resource: [Resource], context: Request };"#),
        )
        .unwrap();
        let mut g = c.action_and_groups("payments:send");
        g.sort();
        assert_eq!(g, vec!["payments:send", "transfer"]);
    }

    #[test]
    fn duplicate_and_reserved_ids_templates_and_approval_forbids_are_refused() {
        let errs = compile(
            r#"@id("a") permit(principal, action, resource); @id("a") permit(principal, action, resource);"#,
            None,
        )
        .unwrap_err();
        assert!(errs[0].message.contains("two policies"));
        let errs = compile(r#"@id("role:x") permit(principal, action, resource);"#, None).unwrap_err();
        assert!(errs[0].message.contains("reserved"));
        let errs = compile("permit(principal == ?principal, action, resource);", None).unwrap_err();
        assert!(errs[0].message.contains("templates"));
        let errs = compile(r#"@requires_approval("x") forbid(principal, action, resource);"#, None).unwrap_err();
        assert!(errs[0].message.contains("permit"));
        let errs = compile(r#"@id("") permit(principal, action, resource);"#, None).unwrap_err();
        assert!(errs[0].message.contains("empty `@id`"), "{errs:?}");
    }

    #[test]
    fn a_clash_with_the_base_schema_names_it_and_has_no_position_in_the_fragment() {
        for fragment in [
            "entity Agent { foo: String };\n",
            "\n\n\nentity Agent { foo: String };\n",
        ] {
            let errs = compile("", Some(fragment)).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].source, Source::Schema);
            assert_eq!((errs[0].line, errs[0].column), (None, None), "{errs:?}");
            assert!(errs[0].message.contains("`Agent`"), "{errs:?}");
            assert!(errs[0].message.contains("base schema"), "{errs:?}");
        }
    }

    #[test]
    fn grant_condition_problems_are_placed_in_the_condition() {
        use idv_core::role::{GrantSubject, Permission as Granted, RoleGrant};
        let c = compile("", None).unwrap();
        let grant = |condition: &str| RoleGrant {
            id: uuid::Uuid::from_u128(7),
            tenant_id: uuid::Uuid::from_u128(1),
            subject: GrantSubject::Agent(uuid::Uuid::from_u128(2)),
            permission: Granted::Action("transfer".into()),
            condition: Some(condition.into()),
            expires_at: None,
            created_at: idv_core::Timestamp::from_micros(0),
            created_by: "t".into(),
        };
        assert_eq!(
            c.validate_grant(&grant("context has amount && context.amount < 5"), &[]),
            Ok(())
        );
        // `amount` is optional: reading it unguarded is refused, at its start.
        let errs = c.validate_grant(&grant("context.amount < 5"), &[]).unwrap_err();
        assert_eq!(errs[0].source, Source::Condition);
        assert_eq!((errs[0].line, errs[0].column), (Some(1), Some(1)), "{errs:?}");
        // On the second line of the condition, at its own column.
        let errs = c
            .validate_grant(&grant("context has amount &&\n  principal.nosuch == 1"), &[])
            .unwrap_err();
        assert_eq!(errs[0].line, Some(2), "{errs:?}");
        assert_eq!(errs[0].column, Some(3), "{errs:?}");
        // A syntax error is the condition's own, placed in it.
        let errs = c.validate_grant(&grant("}}}"), &[]).unwrap_err();
        assert_eq!(errs[0].source, Source::Condition);
        assert_eq!((errs[0].line, errs[0].column), (Some(1), Some(1)), "{errs:?}");
        let errs = c
            .validate_grant(&grant("context has amount && context.amount < "), &[])
            .unwrap_err();
        assert_eq!(errs[0].line, Some(1), "{errs:?}");
        assert!(
            !errs[0].message.contains('}'),
            "no brace the user did not type: {errs:?}"
        );
        // One expression only: it cannot close its policy or add clauses.
        for sneaky in [
            "true } when { true",
            "true } unless { false",
            "true }; permit(principal, action, resource) when { true",
        ] {
            assert!(c.validate_grant(&grant(sneaky), &[]).is_err(), "{sneaky}");
        }
        // A comment at the end is the user's, not the end of the policy.
        assert_eq!(
            c.validate_grant(&grant("context has amount && context.amount < 5 // small ones"), &[]),
            Ok(())
        );
        // Deep nesting is refused before Cedar sees it.
        let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
        let errs = c.validate_grant(&grant(&deep), &[]).unwrap_err();
        assert!(errs[0].message.contains("nested"), "{errs:?}");
    }

    #[test]
    fn a_stored_version_compiles_under_todays_shape_limits_or_not() {
        // Stored before the shape limits: still compiles, so it keeps working.
        let long = format!(
            "permit(principal, action, resource) when {{ {} }};",
            ["true"; 3_000].join(" && ")
        );
        assert!(compile(&long, None).is_err());
        assert!(compile_stored(&long, None).is_ok());
    }

    #[test]
    fn the_schema_says_what_may_be_in_what() {
        let c = compile("", None).unwrap();
        assert!(c.may_be_in("Agent", "Group"));
        assert!(c.may_be_in("Agent", "Role"));
        assert!(c.may_be_in("Role", "Role"));
        assert!(!c.may_be_in("Role", "Agent"));
        assert!(!c.may_be_in("Nope", "Group"));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("é\nx", 3), (2, 1));
        assert_eq!(position("", 10), (1, 1));
    }
}
