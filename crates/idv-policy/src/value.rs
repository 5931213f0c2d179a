//! JSON attribute and context values as Cedar values.

use cedar_policy::RestrictedExpression;
use serde_json::Value;

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 16;

/// Why a JSON value has no Cedar meaning.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{path}`: {reason}")]
pub struct ValueError {
    /// Where, e.g. `context.amount`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Strings, booleans and integers map to themselves, arrays to sets and
/// objects to records. Fractions and nulls have no Cedar form: amounts are
/// integers in minor units. `path` names the value (e.g. `context.amount`)
/// and is only built when the value is refused.
pub fn to_cedar(v: &Value, path: impl FnOnce() -> String) -> Result<RestrictedExpression, ValueError> {
    convert(v, 0).map_err(|f| ValueError {
        path: f.inner.iter().rev().fold(path(), |mut p, s| {
            p.push_str(s);
            p
        }),
        reason: f.reason,
    })
}

/// A refusal: why, and where below the converted value (innermost first).
struct Failure {
    inner: Vec<String>,
    reason: String,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Failure {
        Failure {
            inner: Vec::new(),
            reason: reason.into(),
        }
    }

    fn under(mut self, segment: String) -> Failure {
        self.inner.push(segment);
        self
    }
}

fn convert(v: &Value, depth: usize) -> Result<RestrictedExpression, Failure> {
    if depth > MAX_DEPTH {
        return Err(Failure::new("nested too deeply"));
    }
    Ok(match v {
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => {
                return Err(Failure::new(
                    "numbers must be 64-bit integers (give amounts in minor units)",
                ));
            }
        },
        Value::Array(items) => RestrictedExpression::new_set(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| convert(x, depth + 1).map_err(|f| f.under(format!("[{i}]"))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Object(m) => RestrictedExpression::new_record(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), convert(x, depth + 1).map_err(|f| f.under(format!(".{k}")))?)))
                .collect::<Result<Vec<_>, Failure>>()?,
        )
        .map_err(|e| Failure::new(e.to_string()))?,
        Value::Null => return Err(Failure::new("null has no meaning in a policy; leave the attribute out")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn converts_and_refuses() {
        let at = |p: &'static str| move || p.to_owned();
        assert!(to_cedar(&json!({"a": [1, "x", true], "b": {"c": 2}}), at("context")).is_ok());
        assert_eq!(
            to_cedar(&json!(1.5), at("context.amount")).unwrap_err().path,
            "context.amount"
        );
        assert_eq!(
            to_cedar(&json!({"a": null}), at("context")).unwrap_err().path,
            "context.a"
        );
        assert_eq!(
            to_cedar(&json!({"a": [1, {"b": 0.5}]}), at("context"))
                .unwrap_err()
                .path,
            "context.a[1].b"
        );
        let mut deep = json!(1);
        for _ in 0..20 {
            deep = json!([deep]);
        }
        assert!(to_cedar(&deep, at("x")).is_err());
    }
}
