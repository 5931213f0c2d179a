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
/// integers in minor units.
pub fn to_cedar(v: &Value, path: &str) -> Result<RestrictedExpression, ValueError> {
    convert(v, path, 0)
}

fn convert(v: &Value, path: &str, depth: usize) -> Result<RestrictedExpression, ValueError> {
    let err = |reason: &str| ValueError {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if depth > MAX_DEPTH {
        return Err(err("nested too deeply"));
    }
    Ok(match v {
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => return Err(err("numbers must be 64-bit integers (give amounts in minor units)")),
        },
        Value::Array(items) => RestrictedExpression::new_set(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| convert(x, &format!("{path}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Object(m) => RestrictedExpression::new_record(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), convert(x, &format!("{path}.{k}"), depth + 1)?)))
                .collect::<Result<Vec<_>, ValueError>>()?,
        )
        .map_err(|e| err(&e.to_string()))?,
        Value::Null => return Err(err("null has no meaning in a policy; leave the attribute out")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn converts_and_refuses() {
        assert!(to_cedar(&json!({"a": [1, "x", true], "b": {"c": 2}}), "context").is_ok());
        assert_eq!(
            to_cedar(&json!(1.5), "context.amount").unwrap_err().path,
            "context.amount"
        );
        assert!(to_cedar(&json!({"a": null}), "context").unwrap_err().path == "context.a");
        let mut deep = json!(1);
        for _ in 0..20 {
            deep = json!([deep]);
        }
        assert!(to_cedar(&deep, "x").is_err());
    }
}
