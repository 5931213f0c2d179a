//! Target databases and role templates for dynamic PostgreSQL credentials.
//!
//! A template's statements are SQL text written by an administrator, but only
//! a small allow-list of `GRANT` forms is accepted: each statement is parsed
//! into a [`Grant`] and what runs on the target is rendered from that parse,
//! with every identifier quoted, never the text as given. Nothing can create
//! roles, grant role membership, pass `WITH GRANT OPTION`, or run anything
//! but a grant of object privileges to the new role.

use std::fmt;

use uuid::Uuid;

use crate::Timestamp;
use crate::role;

/// Limits on templates and targets.
pub mod limits {
    /// Most statements in a template.
    pub const STATEMENTS: usize = 64;
    /// Longest statement.
    pub const STATEMENT: usize = 4_096;
    /// Longest role name prefix.
    pub const PREFIX: usize = 16;
    /// Longest lease: 30 days.
    pub const MAX_TTL_SECS: i64 = 30 * 24 * 3600;
}

/// The placeholder for the new role's name in a statement.
pub const ROLE_PLACEHOLDER: &str = "{{name}}";

/// The default prefix of the roles we create.
pub const DEFAULT_PREFIX: &str = "idv_";

/// A registered target database. Its admin connection string is kept sealed
/// under the master key and never leaves the server; these are the parts that
/// are safe to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbTarget {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Its name in the tenant.
    pub name: String,
    /// Host, port, database and admin user, from the connection string.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// The admin role we connect as.
    pub admin_user: String,
    /// Every role we create starts with this; the orphan sweeper drops only
    /// roles that start with it and carry our comment.
    pub role_prefix: String,
    /// Last change.
    pub updated_at: Timestamp,
    /// Who made it.
    pub updated_by: String,
}

/// A role template: what a dynamic credential may do and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbTemplate {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Its name in the tenant.
    pub name: String,
    /// The target it issues roles on.
    pub target: String,
    /// The grants, in their canonical (rendered) form.
    pub statements: Vec<String>,
    /// Lease time when the request names none.
    pub default_ttl_secs: i64,
    /// Longest a lease may last, renewals included.
    pub max_ttl_secs: i64,
    /// Last change.
    pub updated_at: Timestamp,
    /// Who made it.
    pub updated_by: String,
}

/// A refused target or template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct TemplateError {
    /// The field, as named on the wire.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TemplateError {
    TemplateError {
        field,
        reason: reason.into(),
    }
}

/// Checks a target or template name (the role-name rules).
pub fn check_name(field: &'static str, name: &str) -> Result<(), TemplateError> {
    if role::is_name(name) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1-128 characters of letters, digits, `_`, `.` or `-`",
        ))
    }
}

/// Checks a role prefix: a lowercase letter or `_` first, then lowercase
/// letters, digits and `_`, at most 16 characters. Lowercase only, so the
/// names need no quoting to be found again.
pub fn check_prefix(prefix: &str) -> Result<(), TemplateError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= limits::PREFIX
        && prefix
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "role_prefix",
            "must be 1-16 characters of lowercase letters, digits and `_`, not starting with a digit",
        ))
    }
}

impl DbTemplate {
    /// Checks the lease times and parses every statement, replacing them
    /// with their canonical form.
    pub fn check(&mut self) -> Result<(), TemplateError> {
        check_name("name", &self.name)?;
        check_name("target", &self.target)?;
        if self.max_ttl_secs < 1 || self.max_ttl_secs > limits::MAX_TTL_SECS {
            return Err(invalid("max_ttl", "must be between 1 second and 30 days"));
        }
        if self.default_ttl_secs < 1 || self.default_ttl_secs > self.max_ttl_secs {
            return Err(invalid(
                "default_ttl",
                "must be at least 1 second and at most `max_ttl`",
            ));
        }
        if self.statements.is_empty() {
            return Err(invalid("statements", "a template needs at least one grant"));
        }
        if self.statements.len() > limits::STATEMENTS {
            return Err(invalid(
                "statements",
                format!("at most {} statements", limits::STATEMENTS),
            ));
        }
        let mut canonical = Vec::with_capacity(self.statements.len());
        for (i, s) in self.statements.iter().enumerate() {
            let g = Grant::parse(s).map_err(|e| invalid("statements", format!("statement {}: {e}", i + 1)))?;
            canonical.push(g.to_string());
        }
        self.statements = canonical;
        Ok(())
    }

    /// The statements to run for role `role` (already checked), each
    /// rendered from its parse with the role's name quoted.
    pub fn render(&self, role: &str) -> Result<Vec<String>, TemplateError> {
        self.statements
            .iter()
            .map(|s| {
                Grant::parse(s)
                    .map(|g| g.render(role))
                    .map_err(|e| invalid("statements", e))
            })
            .collect()
    }
}

/// What a grant is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// `[TABLE] name, …`
    Tables(Vec<Name>),
    /// `ALL TABLES IN SCHEMA name, …`
    AllTablesIn(Vec<Name>),
    /// `SEQUENCE name, …`
    Sequences(Vec<Name>),
    /// `ALL SEQUENCES IN SCHEMA name, …`
    AllSequencesIn(Vec<Name>),
    /// `SCHEMA name, …`
    Schemas(Vec<Name>),
}

/// A possibly schema-qualified identifier, as PostgreSQL resolves it
/// (unquoted parts folded to lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(pub Vec<String>);

/// One privilege, with an optional column list (tables only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privilege {
    /// Upper-case keyword, e.g. `SELECT`; `ALL` for `ALL [PRIVILEGES]`.
    pub keyword: String,
    /// Columns, for column-level grants.
    pub columns: Vec<String>,
}

/// An allowed statement: `GRANT privileges ON object TO {{name}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// What.
    pub privileges: Vec<Privilege>,
    /// On what.
    pub object: Object,
}

const TABLE_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "ALL",
];
const SEQUENCE_PRIVILEGES: &[&str] = &["USAGE", "SELECT", "UPDATE", "ALL"];
const SCHEMA_PRIVILEGES: &[&str] = &["USAGE"];
const COLUMN_PRIVILEGES: &[&str] = &["SELECT", "INSERT", "UPDATE", "REFERENCES"];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// An unquoted word, as written.
    Word(String),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// `,` `.` `(` `)` `;`
    Punct(char),
    /// `{{name}}`
    Placeholder,
}

fn lex(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' | '.' | '(' | ')' | ';' => out.push(Token::Punct(c)),
            '"' => {
                let mut ident = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a quoted identifier is not closed".into()),
                        Some((_, '"')) => {
                            if chars.peek().is_some_and(|&(_, c)| c == '"') {
                                chars.next();
                                ident.push('"');
                            } else {
                                break;
                            }
                        }
                        Some((_, '\0')) => return Err("identifiers cannot contain NUL".into()),
                        Some((_, c)) => ident.push(c),
                    }
                }
                if ident.is_empty() || ident.len() > 63 {
                    return Err("a quoted identifier must be 1-63 bytes".into());
                }
                out.push(Token::Quoted(ident));
            }
            '{' => {
                let rest = s.get(i..).unwrap_or_default();
                if !rest.starts_with(ROLE_PLACEHOLDER) {
                    return Err(format!("unexpected `{{`; the new role is written `{ROLE_PLACEHOLDER}`"));
                }
                for _ in 1..ROLE_PLACEHOLDER.len() {
                    chars.next();
                }
                out.push(Token::Placeholder);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut w = String::from(c);
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if w.len() > 63 {
                    return Err("an identifier is longer than 63 bytes".into());
                }
                out.push(Token::Word(w));
            }
            other => return Err(format!("unexpected `{other}`; only GRANT statements are allowed")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if let Some(Token::Word(w)) = self.peek()
            && w.eq_ignore_ascii_case(kw)
        {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expected `{kw}`"))
        }
    }

    fn punct(&mut self, p: char) -> bool {
        if self.peek() == Some(&Token::Punct(p)) {
            self.at += 1;
            return true;
        }
        false
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w.to_ascii_lowercase()),
            Some(Token::Quoted(q)) => Ok(q),
            _ => Err("expected a name".into()),
        }
    }

    fn name(&mut self) -> Result<Name, String> {
        let mut parts = vec![self.ident()?];
        while self.punct('.') {
            parts.push(self.ident()?);
        }
        if parts.len() > 2 {
            return Err("names are `table` or `schema.table`".into());
        }
        Ok(Name(parts))
    }

    fn names(&mut self) -> Result<Vec<Name>, String> {
        let mut v = vec![self.name()?];
        while self.punct(',') {
            v.push(self.name()?);
        }
        Ok(v)
    }

    fn privilege(&mut self) -> Result<Privilege, String> {
        let keyword = match self.next() {
            Some(Token::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err("expected a privilege".into()),
        };
        if keyword == "ALL" {
            self.keyword("PRIVILEGES");
        }
        let mut columns = Vec::new();
        if self.punct('(') {
            columns.push(self.ident()?);
            while self.punct(',') {
                columns.push(self.ident()?);
            }
            if !self.punct(')') {
                return Err("expected `)` after the columns".into());
            }
        }
        Ok(Privilege { keyword, columns })
    }
}

impl Grant {
    /// Parses one statement of the allow-list; anything else is refused
    /// with a reason.
    pub fn parse(s: &str) -> Result<Grant, String> {
        if s.len() > limits::STATEMENT {
            return Err(format!("longer than {} bytes", limits::STATEMENT));
        }
        let mut p = Parser { tokens: lex(s)?, at: 0 };
        p.expect_keyword("GRANT")?;
        let mut privileges = vec![p.privilege()?];
        while p.punct(',') {
            privileges.push(p.privilege()?);
        }
        p.expect_keyword("ON")?;
        let object = if p.keyword("ALL") {
            let sequences = if p.keyword("TABLES") {
                false
            } else if p.keyword("SEQUENCES") {
                true
            } else {
                return Err("expected `ALL TABLES IN SCHEMA` or `ALL SEQUENCES IN SCHEMA`".into());
            };
            p.expect_keyword("IN")?;
            p.expect_keyword("SCHEMA")?;
            let n = p.names()?;
            if sequences {
                Object::AllSequencesIn(n)
            } else {
                Object::AllTablesIn(n)
            }
        } else if p.keyword("SEQUENCE") {
            Object::Sequences(p.names()?)
        } else if p.keyword("SCHEMA") {
            Object::Schemas(p.names()?)
        } else {
            p.keyword("TABLE");
            Object::Tables(p.names()?)
        };
        p.expect_keyword("TO")?;
        if p.next() != Some(Token::Placeholder) {
            return Err(format!(
                "grants may only be made to the new role, written `{ROLE_PLACEHOLDER}`"
            ));
        }
        p.punct(';');
        if p.peek().is_some() {
            return Err("one GRANT per statement, with nothing after it (no `WITH GRANT OPTION`)".into());
        }
        let g = Grant { privileges, object };
        g.check()?;
        Ok(g)
    }

    fn check(&self) -> Result<(), String> {
        let (allowed, kind) = match &self.object {
            Object::Tables(_) | Object::AllTablesIn(_) => (TABLE_PRIVILEGES, "tables"),
            Object::Sequences(_) | Object::AllSequencesIn(_) => (SEQUENCE_PRIVILEGES, "sequences"),
            Object::Schemas(_) => (SCHEMA_PRIVILEGES, "schemas"),
        };
        if let Object::Schemas(names) = &self.object
            && names.iter().any(|n| n.0.len() != 1)
        {
            return Err("schema names are not qualified".into());
        }
        for p in &self.privileges {
            if !allowed.contains(&p.keyword.as_str()) {
                return Err(format!(
                    "`{}` is not a privilege that can be granted on {kind} here (allowed: {})",
                    p.keyword,
                    allowed.join(", ")
                ));
            }
            if !p.columns.is_empty()
                && (!matches!(self.object, Object::Tables(_)) || !COLUMN_PRIVILEGES.contains(&p.keyword.as_str()))
            {
                return Err(format!("`{}` cannot name columns here", p.keyword));
            }
        }
        Ok(())
    }

    /// The statement for role `role`, every identifier quoted.
    pub fn render(&self, role: &str) -> String {
        Rendered(self, &quote_ident(role)).to_string()
    }
}

/// A PostgreSQL quoted identifier: `"…"` with `"` doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn write_names(f: &mut fmt::Formatter<'_>, names: &[Name]) -> fmt::Result {
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        let parts: Vec<String> = n.0.iter().map(|p| quote_ident(p)).collect();
        f.write_str(&parts.join("."))?;
    }
    Ok(())
}

/// The canonical form: keywords upper-case, identifiers quoted, the grantee
/// left as the placeholder.
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Rendered(self, ROLE_PLACEHOLDER).fmt(f)
    }
}

/// A grant written out with its grantee (the placeholder, or a quoted role).
struct Rendered<'a>(&'a Grant, &'a str);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Rendered(g, grantee) = self;
        f.write_str("GRANT ")?;
        for (i, p) in g.privileges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&p.keyword)?;
            if !p.columns.is_empty() {
                let cols: Vec<String> = p.columns.iter().map(|c| quote_ident(c)).collect();
                write!(f, " ({})", cols.join(", "))?;
            }
        }
        let (kw, names) = match &g.object {
            Object::Tables(n) => ("TABLE", n),
            Object::AllTablesIn(n) => ("ALL TABLES IN SCHEMA", n),
            Object::Sequences(n) => ("SEQUENCE", n),
            Object::AllSequencesIn(n) => ("ALL SEQUENCES IN SCHEMA", n),
            Object::Schemas(n) => ("SCHEMA", n),
        };
        write!(f, " ON {kw} ")?;
        write_names(f, names)?;
        write!(f, " TO {grantee}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn allowed_forms_parse_to_a_canonical_form() {
        let cases = [
            (
                "grant select on accounts to {{name}}",
                "GRANT SELECT ON TABLE \"accounts\" TO {{name}}",
            ),
            (
                "GRANT SELECT, INSERT ON TABLE public.Accounts, \"Mixed\"\"Case\" TO {{name}};",
                "GRANT SELECT, INSERT ON TABLE \"public\".\"accounts\", \"Mixed\"\"Case\" TO {{name}}",
            ),
            (
                "GRANT SELECT (id, balance) ON accounts TO {{name}}",
                "GRANT SELECT (\"id\", \"balance\") ON TABLE \"accounts\" TO {{name}}",
            ),
            (
                "GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA reporting TO {{name}}",
                "GRANT ALL ON ALL TABLES IN SCHEMA \"reporting\" TO {{name}}",
            ),
            (
                "GRANT USAGE ON SCHEMA app TO {{name}}",
                "GRANT USAGE ON SCHEMA \"app\" TO {{name}}",
            ),
            (
                "GRANT USAGE, SELECT ON SEQUENCE app.ids_seq TO {{name}}",
                "GRANT USAGE, SELECT ON SEQUENCE \"app\".\"ids_seq\" TO {{name}}",
            ),
            (
                "GRANT usage ON ALL SEQUENCES IN SCHEMA app TO {{name}}",
                "GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"app\" TO {{name}}",
            ),
        ];
        for (input, canonical) in cases {
            let g = Grant::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(g.to_string(), canonical);
            // The canonical form parses to the same grant.
            assert_eq!(Grant::parse(canonical), Ok(g.clone()));
            assert!(g.render("idv_r_1").ends_with("TO \"idv_r_1\""));
        }
        // A table named like the placeholder stays a table name.
        let g = Grant::parse("GRANT SELECT ON \"{{name}}\" TO {{name}}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.render("r"), "GRANT SELECT ON TABLE \"{{name}}\" TO \"r\"");
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "SELECT 1",
            "CREATE ROLE x",
            "GRANT postgres TO {{name}}",
            "GRANT pg_read_all_data TO {{name}}",
            "GRANT SELECT ON accounts TO public",
            "GRANT SELECT ON accounts TO {{name}} WITH GRANT OPTION",
            "GRANT SELECT ON accounts TO {{name}}; DROP TABLE accounts",
            "GRANT SELECT ON accounts TO {{name}} -- comment",
            "GRANT CREATE ON SCHEMA app TO {{name}}",
            "GRANT CONNECT ON DATABASE prod TO {{name}}",
            "GRANT EXECUTE ON FUNCTION f() TO {{name}}",
            "GRANT DELETE (id) ON accounts TO {{name}}",
            "GRANT SELECT ON a.b.c TO {{name}}",
            "GRANT SELECT ON \"unclosed TO {{name}}",
            "GRANT SELECT ON accounts TO {{nam}}",
            "GRANT SELECT ON accounts TO 'x'",
            "GRANT SELECT ON ALL FUNCTIONS IN SCHEMA app TO {{name}}",
            "GRANT USAGE ON SCHEMA a.b TO {{name}}",
        ] {
            assert!(Grant::parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn templates_check_times_and_statements() {
        let mut t = DbTemplate {
            tenant_id: Uuid::nil(),
            name: "readonly".into(),
            target: "reporting".into(),
            statements: vec!["grant select on accounts to {{name}}".into()],
            default_ttl_secs: 3600,
            max_ttl_secs: 86_400,
            updated_at: Timestamp::from_micros(0),
            updated_by: "t".into(),
        };
        assert_eq!(t.check(), Ok(()));
        assert_eq!(t.statements, vec!["GRANT SELECT ON TABLE \"accounts\" TO {{name}}"]);
        assert_eq!(
            t.render("idv_x"),
            Ok(vec!["GRANT SELECT ON TABLE \"accounts\" TO \"idv_x\"".to_owned()])
        );
        let mut long = t.clone();
        long.default_ttl_secs = 100_000;
        assert_eq!(long.check().map_err(|e| e.field), Err("default_ttl"));
        let mut bad = t.clone();
        bad.statements = vec!["DROP TABLE accounts".into()];
        assert_eq!(bad.check().map_err(|e| e.field), Err("statements"));
        assert!(check_prefix("idv_").is_ok());
        assert!(check_prefix("Idv").is_err());
        assert!(check_prefix("1x").is_err());
    }

    proptest! {
        /// Whatever the text, parsing never panics, and anything accepted
        /// renders to a statement that parses back to the same grant and
        /// names no other grantee.
        #[test]
        fn parse_is_total_and_canonical(s in "(?i)(grant|select|insert|all|privileges|on|table|schema|sequence|in|tables|usage|to|\\{\\{name\\}\\}|[a-z_\"]{1,6}|[,.();]| ){0,16}") {
            if let Ok(g) = Grant::parse(&s) {
                let canonical = g.to_string();
                prop_assert_eq!(Grant::parse(&canonical), Ok(g.clone()));
                let rendered = g.render("idv_role");
                prop_assert!(rendered.ends_with(" TO \"idv_role\""));
                prop_assert!(!rendered.contains(';'));
            }
        }

        #[test]
        fn quoting_survives_any_identifier(s in "[^\\x00]{1,20}") {
            let stmt = format!("GRANT SELECT ON {} TO {{{{name}}}}", quote_ident(&s));
            if s.len() <= 63 {
                let g = Grant::parse(&stmt);
                prop_assert_eq!(g.map(|g| g.object), Ok(Object::Tables(vec![Name(vec![s])])));
            }
        }
    }
}
