//! The shape of caller-supplied Cedar text, checked before Cedar parses it.
//!
//! Cedar's parser and the conversions after it recurse once per nesting
//! level (measured on a release build: 175 nested parentheses, brackets or
//! records, or ~2,000 nested `if`s, overflow a 2 MiB thread stack and abort
//! the process). So nesting depth and the size of each policy are bounded
//! here, by a scan that recurses on nothing: a refusal with a position
//! instead of a crash. The bounds are far above what a readable policy needs.

use crate::compile::{Problem, Source, position};

/// Deepest nesting of `(`, `[`, `{` (and `<` in a schema), and most
/// `if`s in one policy.
pub const NESTING: usize = 32;

/// Largest single policy (one statement of a version's text), in bytes: the
/// per-policy quota of Amazon Verified Permissions. A version may hold many.
pub const POLICY_BYTES: usize = 10_000;

/// What kind of text is scanned: the delimiters and limits differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Policies separated by `;`.
    Policies,
    /// One expression (a grant's condition).
    Expression,
    /// A schema fragment (`<…>` nests too).
    Schema,
}

/// Refuses text nested deeper than [`NESTING`], or (policies) a policy
/// larger than [`POLICY_BYTES`] or with more than [`NESTING`] `if`s, with the
/// position where the bound was passed.
pub fn check(text: &str, kind: Kind, source: Source) -> Result<(), Problem> {
    let refuse = |offset: usize, message: String| {
        // At the first character that is not white space.
        let rest = text.get(offset..).unwrap_or("");
        let (line, column) = position(text, offset + rest.len() - rest.trim_start().len());
        Err(Problem {
            line: Some(line),
            column: Some(column),
            ..Problem::new(source, message)
        })
    };
    let mut depth = 0usize;
    let mut ifs = 0usize;
    let mut statement = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                // A string literal: nothing in it nests; `\"` does not end it.
                while let Some((_, s)) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek().is_some_and(|&(_, n)| n == '/') => {
                for (_, s) in chars.by_ref() {
                    if s == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > NESTING {
                    return refuse(at, format!("nested more than {NESTING} levels deep"));
                }
            }
            '<' if kind == Kind::Schema => {
                depth += 1;
                if depth > NESTING {
                    return refuse(at, format!("nested more than {NESTING} levels deep"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '>' if kind == Kind::Schema => depth = depth.saturating_sub(1),
            ';' if depth == 0 && kind == Kind::Policies => {
                if at - statement > POLICY_BYTES {
                    return refuse(statement, format!("a policy is larger than {POLICY_BYTES} bytes"));
                }
                statement = at + 1;
                ifs = 0;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = at + c.len_utf8();
                while let Some(&(i, n)) = chars.peek() {
                    if !(n.is_alphanumeric() || n == '_') {
                        break;
                    }
                    end = i + n.len_utf8();
                    chars.next();
                }
                if kind != Kind::Schema && text.get(at..end) == Some("if") {
                    ifs += 1;
                    if ifs > NESTING {
                        return refuse(at, format!("more than {NESTING} `if`s in one policy"));
                    }
                }
            }
            _ => {}
        }
    }
    if kind == Kind::Policies && text.len() - statement > POLICY_BYTES {
        return refuse(statement, format!("a policy is larger than {POLICY_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_check(text: &str) -> Result<(), Problem> {
        check(text, Kind::Policies, Source::Policies)
    }

    #[test]
    fn ordinary_text_passes() {
        let text = r#"@id("a") permit(principal in Role::"payer", action in [Action::"transfer"], resource)
            when { context has amount && (context.amount < 500 || ["x", "y"].contains("x")) } // (((
            unless { if principal has team then principal.team == "ops" else false };
            forbid(principal, action, resource) when { "((((" like "*" };"#;
        assert_eq!(policy_check(text), Ok(()));
        assert_eq!(
            check(
                "entity A { b: Set<Set<String>>, c?: { d: Long } };",
                Kind::Schema,
                Source::Schema
            ),
            Ok(())
        );
    }

    #[test]
    fn deep_nesting_is_refused_where_it_passes_the_bound() {
        let deep = |n: usize| {
            format!(
                "permit(principal, action, resource) when {{ {}true{} }};",
                "(".repeat(n),
                ")".repeat(n)
            )
        };
        assert_eq!(policy_check(&deep(NESTING - 1)), Ok(()));
        let e = policy_check(&deep(10_000)).unwrap_err();
        assert!(e.message.contains("nested"), "{e:?}");
        // `when {` is one level; the first `(` in it is at column 44.
        assert_eq!(
            (e.line, e.column),
            (Some(1), Some(u32::try_from(44 + NESTING - 1).unwrap()))
        );
        let set = format!("entity A {{ b: {}String{} }};", "Set<".repeat(40), ">".repeat(40));
        assert!(check(&set, Kind::Schema, Source::Schema).is_err());
    }

    #[test]
    fn nesting_in_strings_and_comments_does_not_count() {
        let text = format!(
            "permit(principal, action, resource) when {{ \"{}\\\"\" == \"\" }}; // {}\n",
            "(".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(policy_check(&text), Ok(()));
    }

    #[test]
    fn ifs_and_policy_size_are_bounded_per_policy() {
        let ifs = |n: usize| {
            format!(
                "permit(principal, action, resource) when {{ {}true }};",
                "if true then true else ".repeat(n)
            )
        };
        assert_eq!(policy_check(&ifs(NESTING)), Ok(()));
        assert!(policy_check(&ifs(NESTING + 1)).is_err());
        // Many policies may each have their share.
        assert_eq!(policy_check(&ifs(NESTING).repeat(3)), Ok(()));
        let long = format!(
            "permit(principal, action, resource) when {{ {} }};",
            ["true"; 3_000].join(" && ")
        );
        let e = policy_check(&format!("permit(principal, action, resource);\n{long}")).unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(1)), "{e:?}");
        assert!(e.message.contains("larger"), "{e:?}");
        // `if` only as a word.
        assert_eq!(
            check(&"iffy && ".repeat(100), Kind::Expression, Source::Condition),
            Ok(())
        );
    }
}
