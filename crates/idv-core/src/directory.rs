//! Directory entities: the tenant's own data for policies (humans, groups,
//! role hierarchies, resources, and extra group memberships of agents), in
//! Cedar's entity shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Limits.
pub mod limits {
    /// Longest type name or id.
    pub const ID: usize = 512;
    /// Most parents of one entity.
    pub const PARENTS: usize = 256;
    /// Largest attribute document, in bytes of JSON.
    pub const ATTRS: usize = 64 * 1024;
    /// Most entities in one upload.
    pub const BATCH: usize = 10_000;
}

/// A reference to an entity: Cedar type and id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityRef {
    /// Cedar entity type, e.g. `Group` or a tenant type like `todo`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its id.
    pub id: String,
}

/// One entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntity {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: Uuid,
    /// Who it is.
    pub uid: EntityRef,
    /// Attributes (JSON; strings, integers, booleans, arrays, objects).
    #[serde(default)]
    pub attrs: Map<String, Value>,
    /// Groups, roles or containers it belongs to.
    #[serde(default)]
    pub parents: Vec<EntityRef>,
}

/// Why an entity is invalid.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("entity `{entity}`: {reason}")]
pub struct EntityError {
    /// `type::id` of the entity.
    pub entity: String,
    /// What is wrong.
    pub reason: String,
}

fn ref_ok(r: &EntityRef) -> bool {
    !r.type_name.is_empty()
        && r.type_name.len() <= limits::ID
        && !r.id.is_empty()
        && r.id.len() <= limits::ID
        && r.type_name.split("::").all(|seg| {
            seg.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

impl DirectoryEntity {
    /// Checks sizes and names (the policy engine checks types against the schema).
    pub fn validate(&self) -> Result<(), EntityError> {
        let err = |reason: String| EntityError {
            entity: format!("{}::{}", self.uid.type_name, self.uid.id),
            reason,
        };
        if !ref_ok(&self.uid) {
            return Err(err(
                "the type must be a Cedar identifier and the id 1 to 512 bytes".into()
            ));
        }
        if self.uid.type_name == "Action" {
            return Err(err("actions are declared in the schema, not uploaded".into()));
        }
        if self.parents.len() > limits::PARENTS {
            return Err(err(format!("at most {} parents", limits::PARENTS)));
        }
        if let Some(p) = self.parents.iter().find(|p| !ref_ok(p)) {
            return Err(err(format!(
                "parent `{}::{}` is not a valid reference",
                p.type_name, p.id
            )));
        }
        if serde_json::to_vec(&self.attrs).map_or(0, |v| v.len()) > limits::ATTRS {
            return Err(err(format!("attributes larger than {} bytes", limits::ATTRS)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked() {
        let mut e = DirectoryEntity {
            tenant_id: Uuid::nil(),
            uid: EntityRef {
                type_name: "Group".into(),
                id: "payments".into(),
            },
            attrs: Map::new(),
            parents: vec![],
        };
        assert!(e.validate().is_ok());
        e.uid.type_name = "Acme::Doc".into();
        assert!(e.validate().is_ok());
        e.uid.type_name = "bad type".into();
        assert!(e.validate().is_err());
        e.uid.type_name = "Action".into();
        assert!(e.validate().is_err());
    }
}
