//! Shared pieces of the fuzz targets: structured inputs (so the fuzzer reaches
//! past the first validation check) and reference oracles written from the
//! documented rules, independently of idv-core's code, so targets can assert
//! that idv-core accepts exactly what the rules allow.

use std::collections::BTreeMap;

use idv_core::agent::{AgentChanges, Environment, NewAgent, Parent};
use idv_core::audit::{Actor, ActorKind, Draft, Outcome};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use serde_json::Value;
use uuid::Uuid;

/// Text that is often near the validators' rules: short runs over an
/// alphabet of valid, borderline and invalid characters, sometimes arbitrary
/// UTF-8, sometimes around the length limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

const ALPHABET: &[char] = &[
    'a', 'b', 'z', 'A', 'Z', '0', '7', '9', '.', '-', '_', '/', ':', ' ', '\t', '\n', '\u{7f}', '\u{85}', '\u{a0}',
    'é', '€', '\u{200b}', '\u{2028}', '😀', '%', '"', '\\', '=',
];

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.ratio(1, 5)? {
            return Ok(Text(String::arbitrary(u)?));
        }
        let len = match u.int_in_range(0..=9u8)? {
            0 => u.int_in_range(0..=1100)?,
            1 => u.int_in_range(60..=70)?,
            2 => u.int_in_range(125..=130)?,
            3 => u.int_in_range(250..=260)?,
            _ => u.int_in_range(0..=12)?,
        };
        let mut s = String::with_capacity(len);
        // Runs of one character keep long strings cheap to describe.
        while s.chars().count() < len {
            let c = *u.choose(ALPHABET)?;
            let run = u.int_in_range(1..=len.max(1))?;
            s.extend(std::iter::repeat_n(c, run.min(len - s.chars().count())));
        }
        Ok(Text(s))
    }
}

impl Text {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// JSON of any shape, for audit `details`.
#[derive(Clone, Debug, Arbitrary)]
pub enum Json {
    /// `null`.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// Negative or positive integer.
    Int(i64),
    /// Large integer.
    UInt(u64),
    /// Floating point (NaN and infinities become `null`).
    Float(f64),
    /// String.
    Str(Text),
    /// Array.
    Arr(Vec<Json>),
    /// Object (later duplicates replace earlier ones).
    Obj(Vec<(Text, Json)>),
}

impl Json {
    /// As a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::UInt(u) => Value::from(*u),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.0.clone()),
            Json::Arr(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Obj(o) => Value::Object(o.iter().map(|(k, v)| (k.0.clone(), v.to_value())).collect()),
        }
    }
}

/// An audit event's content before it is chained.
#[derive(Clone, Debug, Arbitrary)]
pub struct DraftInput {
    /// Tenant.
    pub tenant: u128,
    /// Actor is an admin token (else the system).
    pub token_actor: bool,
    /// Actor name.
    pub actor_name: Text,
    /// Actor token id.
    pub token_id: Option<u128>,
    /// Action.
    pub action: Text,
    /// Target type.
    pub target_type: Text,
    /// Target id.
    pub target_id: Text,
    /// Outcome selector.
    pub outcome: u8,
    /// Reason.
    pub reason: Option<Text>,
    /// Request id.
    pub request_id: Option<Text>,
    /// Details.
    pub details: Json,
}

impl DraftInput {
    /// The draft.
    pub fn to_draft(&self) -> Draft {
        Draft {
            tenant_id: Uuid::from_u128(self.tenant),
            actor: Actor {
                kind: if self.token_actor {
                    ActorKind::AdminToken
                } else {
                    ActorKind::System
                },
                name: self.actor_name.0.clone(),
                token_id: self.token_id.map(Uuid::from_u128),
            },
            action: self.action.0.clone(),
            target_type: self.target_type.0.clone(),
            target_id: self.target_id.0.clone(),
            outcome: match self.outcome % 3 {
                0 => Outcome::Success,
                1 => Outcome::Failure,
                _ => Outcome::Denied,
            },
            reason: self.reason.as_ref().map(|r| r.0.clone()),
            request_id: self.request_id.as_ref().map(|r| r.0.clone()),
            details: self.details.to_value(),
        }
    }
}

/// A request to register an agent, as the fuzzer builds it.
#[derive(Clone, Debug, Arbitrary)]
pub struct NewAgentInput {
    /// Name.
    pub name: Text,
    /// Owner.
    pub owner: Text,
    /// Purpose.
    pub purpose: Text,
    /// Environment selector.
    pub environment: Option<u8>,
    /// Team.
    pub team: Option<Text>,
    /// Labels.
    pub labels: Vec<(Text, Text)>,
    /// Capabilities.
    pub capabilities: Vec<Text>,
    /// Class.
    pub class: Option<Text>,
    /// Parent: an agent id (possibly its own) or a human.
    pub parent: Option<ParentInput>,
    /// Dependencies (small numbers so duplicates and self-references happen).
    pub depends_on: Vec<u8>,
    /// Time to live.
    pub ttl_seconds: Option<u64>,
}

/// A parent as the fuzzer builds it.
#[derive(Clone, Debug, Arbitrary)]
pub enum ParentInput {
    /// An agent; `0` is the agent itself.
    Agent(u8),
    /// A human.
    Human(Text),
}

/// The id the fuzzer's agent gets: small numbers in inputs map onto it.
pub fn small_id(n: u8) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

fn environment(n: u8) -> Environment {
    match n % 3 {
        0 => Environment::Dev,
        1 => Environment::Test,
        _ => Environment::Prod,
    }
}

impl NewAgentInput {
    /// The core request.
    pub fn to_new_agent(&self) -> NewAgent {
        NewAgent {
            name: self.name.0.clone(),
            owner: self.owner.0.clone(),
            purpose: self.purpose.0.clone(),
            environment: self.environment.map(environment),
            team: self.team.as_ref().map(|t| t.0.clone()),
            labels: self.labels.iter().map(|(k, v)| (k.0.clone(), v.0.clone())).collect(),
            capabilities: self.capabilities.iter().map(|c| c.0.clone()).collect(),
            class: self.class.as_ref().map(|c| c.0.clone()),
            parent: self.parent.as_ref().map(|p| match p {
                ParentInput::Agent(n) => Parent::Agent(small_id(*n)),
                ParentInput::Human(h) => Parent::Human(h.0.clone()),
            }),
            depends_on: self.depends_on.iter().map(|n| small_id(*n)).collect(),
            // Grant lists are fuzzed by the `oauth_params` target.
            grants: idv_core::grant::Grants::default(),
            ttl_seconds: self.ttl_seconds,
        }
    }
}

/// Changes to an agent as the fuzzer builds them.
#[derive(Clone, Debug, Arbitrary)]
pub struct ChangesInput {
    /// New name.
    pub name: Option<Text>,
    /// New owner.
    pub owner: Option<Text>,
    /// New purpose.
    pub purpose: Option<Text>,
    /// New or cleared environment.
    pub environment: Option<Option<u8>>,
    /// New or cleared team.
    pub team: Option<Option<Text>>,
    /// New labels.
    pub labels: Option<Vec<(Text, Text)>>,
    /// New capabilities.
    pub capabilities: Option<Vec<Text>>,
    /// New or cleared class.
    pub class: Option<Option<Text>>,
    /// New dependencies.
    pub depends_on: Option<Vec<u8>>,
}

impl ChangesInput {
    /// The core changes.
    pub fn to_changes(&self) -> AgentChanges {
        AgentChanges {
            name: self.name.as_ref().map(|t| t.0.clone()),
            owner: self.owner.as_ref().map(|t| t.0.clone()),
            purpose: self.purpose.as_ref().map(|t| t.0.clone()),
            environment: self.environment.map(|e| e.map(environment)),
            team: self.team.as_ref().map(|t| t.as_ref().map(|t| t.0.clone())),
            labels: self
                .labels
                .as_ref()
                .map(|l| l.iter().map(|(k, v)| (k.0.clone(), v.0.clone())).collect()),
            capabilities: self
                .capabilities
                .as_ref()
                .map(|c| c.iter().map(|c| c.0.clone()).collect()),
            class: self.class.as_ref().map(|c| c.as_ref().map(|c| c.0.clone())),
            depends_on: self
                .depends_on
                .as_ref()
                .map(|d| d.iter().map(|n| small_id(*n)).collect()),
            allowed_scopes: None,
            allowed_resources: None,
            authorization_details_types: None,
        }
    }
}

/// Reference rules, from the module docs and error messages of idv-core.
pub mod oracle {
    use super::*;

    /// Agent and class names: 1 to 128 ASCII letters, digits, `.`, `_`, `-`,
    /// starting with a letter or digit.
    pub fn agent_name(s: &str) -> bool {
        let b = s.as_bytes();
        (1..=128).contains(&b.len())
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    }

    /// Free text: not blank, at most `max` characters, no control characters.
    pub fn text(s: &str, max: usize) -> bool {
        !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
    }

    /// Label key: 1 to 63 of lowercase letters, digits, `.`, `_`, `-`, `/`,
    /// starting with a lowercase letter or digit.
    pub fn label_key(s: &str) -> bool {
        let b = s.as_bytes();
        (1..=63).contains(&b.len())
            && b.first().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-/".contains(c))
    }

    /// Label value: at most 256 characters, no control characters (may be empty).
    pub fn label_value(s: &str) -> bool {
        s.chars().count() <= 256 && !s.chars().any(char::is_control)
    }

    /// Labels: at most 64, each key and value valid.
    pub fn labels(l: &BTreeMap<String, String>) -> bool {
        l.len() <= 64 && l.iter().all(|(k, v)| label_key(k) && label_value(v))
    }

    /// Capability: 1 to 128 ASCII letters, digits, `.`, `_`, `-`, `:`, `/`.
    pub fn capability(s: &str) -> bool {
        (1..=128).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-:/".contains(&c))
    }

    /// Capabilities: at most 128, each valid.
    pub fn capabilities(c: &[String]) -> bool {
        c.len() <= 128 && c.iter().all(|c| capability(c))
    }

    /// Dependencies: at most 64, no duplicates, not the agent itself.
    pub fn depends_on(d: &[Uuid], id: Uuid) -> bool {
        let mut sorted = d.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        d.len() <= 64 && sorted.len() == d.len() && !d.contains(&id)
    }

    /// Whether `spec` may register as agent `id`.
    pub fn new_agent(spec: &NewAgent, id: Uuid) -> bool {
        agent_name(&spec.name)
            && text(&spec.owner, 256)
            && text(&spec.purpose, 1024)
            && spec.team.as_deref().is_none_or(|t| text(t, 128))
            && labels(&spec.labels)
            && capabilities(&spec.capabilities)
            && spec.class.as_deref().is_none_or(agent_name)
            && match &spec.parent {
                None => true,
                Some(Parent::Agent(p)) => *p != id,
                Some(Parent::Human(h)) => text(h, 256),
            }
            && depends_on(&spec.depends_on, id)
            && grants(&spec.grants)
            && spec.ttl_seconds.is_none_or(|t| (1..=365 * 24 * 3600).contains(&t))
    }

    /// RFC 6749 §3.3 scope token, at most 512 bytes.
    pub fn scope_token(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 512
            && s.bytes()
                .all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b))
    }

    /// RFC 8707 resource: `scheme:rest`, scheme = ALPHA *(ALPHA / DIGIT /
    /// "+" / "-" / "."), printable ASCII, no fragment, at most 512 bytes.
    pub fn resource(s: &str) -> bool {
        let Some(colon) = s.find(':') else { return false };
        let scheme = &s[..colon];
        s.len() <= 512
            && colon + 1 < s.len()
            && scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && s.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'#')
    }

    /// An agent's grant lists (at most 256 entries each).
    pub fn grants(g: &idv_core::grant::Grants) -> bool {
        g.scopes.len() <= 256
            && g.resources.len() <= 256
            && g.authorization_details_types.len() <= 256
            && g.scopes.iter().all(|s| scope_token(s))
            && g.resources.iter().all(|r| resource(r))
            && g.authorization_details_types
                .iter()
                .all(|t| !t.is_empty() && t.len() <= 512 && t.bytes().all(|b| (b'!'..=b'~').contains(&b)))
    }

    /// Whether `c` may be applied to agent `id`.
    pub fn changes(c: &AgentChanges, id: Uuid) -> bool {
        c.name.as_deref().is_none_or(agent_name)
            && c.owner.as_deref().is_none_or(|o| text(o, 256))
            && c.purpose.as_deref().is_none_or(|p| text(p, 1024))
            && c.team
                .as_ref()
                .is_none_or(|t| t.as_deref().is_none_or(|t| text(t, 128)))
            && c.labels.as_ref().is_none_or(labels)
            && c.capabilities.as_deref().is_none_or(capabilities)
            && c.class.as_ref().is_none_or(|k| k.as_deref().is_none_or(agent_name))
            && c.depends_on.as_deref().is_none_or(|d| depends_on(d, id))
    }

    /// Whether changed grant lists are valid.
    pub fn grant_changes(c: &AgentChanges) -> bool {
        let g = idv_core::grant::Grants {
            scopes: c.allowed_scopes.clone().unwrap_or_default(),
            resources: c.allowed_resources.clone().unwrap_or_default(),
            authorization_details_types: c.authorization_details_types.clone().unwrap_or_default(),
        };
        grants(&g)
    }

    /// Tenant slug: 1 to 63 of lowercase letters, digits and `-`, starting
    /// with a letter, not ending with `-`.
    pub fn tenant_name(s: &str) -> bool {
        let b = s.as_bytes();
        (1..=63).contains(&b.len())
            && b.first().is_some_and(u8::is_ascii_lowercase)
            && b.last() != Some(&b'-')
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    }

    /// SPIFFE trust domain: 1 to 255 of lowercase letters, digits, `.`, `-`, `_`.
    pub fn trust_domain(s: &str) -> bool {
        (1..=255).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-_".contains(&c))
    }

    /// The longest duration: 100 years of 365 days.
    pub const MAX_DURATION: u64 = 100 * 365 * 24 * 3600;

    /// Durations: a bare number of seconds, or `<digits><unit>` terms with
    /// units `d`, `h`, `m`, `s`, each at most once and largest first; 1 s to
    /// 100 years; surrounding whitespace ignored.
    pub fn duration(input: &str) -> Option<u64> {
        let s = input.trim();
        if s.is_empty() {
            return None;
        }
        let number = |d: &str| d.parse::<u128>().unwrap_or(u128::MAX);
        let total = if s.bytes().all(|b| b.is_ascii_digit()) {
            number(s)
        } else {
            let units = [('d', 86_400u128), ('h', 3_600), ('m', 60), ('s', 1)];
            let mut next_unit = 0;
            let mut total: u128 = 0;
            let mut rest = s;
            while !rest.is_empty() {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return None;
                }
                let (d, r) = rest.split_at(digits);
                let unit = r.chars().next()?;
                let at = units.iter().skip(next_unit).position(|u| u.0 == unit)? + next_unit;
                let scale = units.get(at).map_or(1, |u| u.1);
                total = total.saturating_add(number(d).saturating_mul(scale));
                next_unit = at + 1;
                rest = r.get(unit.len_utf8()..).unwrap_or("");
            }
            total
        };
        u64::try_from(total).ok().filter(|t| (1..=MAX_DURATION).contains(t))
    }

    /// `seconds` in the `1d2h3m4s` form (zero terms left out).
    pub fn format_duration(seconds: u64) -> String {
        let mut out = String::new();
        let mut rest = seconds;
        for (unit, scale) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
            let n = rest / scale;
            rest %= scale;
            if n > 0 {
                out.push_str(&n.to_string());
                out.push(unit);
            }
        }
        out
    }

    /// The base62 alphabet of generated secrets.
    pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// The admin token checksum: CRC32 of prefix and body as 6 base62 digits.
    pub fn token_checksum(prefix_and_body: &str) -> String {
        let mut n = u64::from(crc32fast::hash(prefix_and_body.as_bytes()));
        let mut digits = [b'0'; 6];
        for d in digits.iter_mut().rev() {
            *d = BASE62.get((n % 62) as usize).copied().unwrap_or(b'0');
            n /= 62;
        }
        digits.iter().map(|&b| char::from(b)).collect()
    }

    /// Admin token format: `idvat_` + 40 base62 + checksum. `Some(true)`: well
    /// formed; `Some(false)`: right shape, wrong checksum; `None`: malformed.
    pub fn admin_token(s: &str) -> Option<bool> {
        let rest = s.strip_prefix("idvat_")?;
        if rest.len() != 46 || !rest.bytes().all(|b| BASE62.contains(&b)) {
            return None;
        }
        let (body, sum) = rest.split_at(40);
        Some(token_checksum(&format!("idvat_{body}")) == sum)
    }

    /// Hex of exactly `n` bytes, either case.
    pub fn hex(s: &str, n: usize) -> Option<Vec<u8>> {
        if s.len() != 2 * n || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        (0..n)
            .map(|i| s.get(2 * i..2 * i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
            .collect()
    }
}
