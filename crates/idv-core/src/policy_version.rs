//! A tenant's policy versions: uploaded, validated, activated, rolled back.
//! The text is immutable once stored; only activation moves.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// Longest version description, in characters.
pub const DESCRIPTION: usize = 1024;

/// One stored version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// Tenant.
    pub tenant_id: Uuid,
    /// 1, 2, … per tenant.
    pub version: i64,
    /// The Cedar policies.
    pub policies: String,
    /// The tenant's schema fragment (Cedar schema syntax), if any.
    pub schema: Option<String>,
    /// The policy ids it holds, in text order.
    pub policy_ids: Vec<String>,
    /// Why it was made.
    pub description: String,
    /// When it was uploaded.
    pub created_at: Timestamp,
    /// Who uploaded it.
    pub created_by: String,
    /// When it was last made active.
    pub activated_at: Option<Timestamp>,
    /// Whether it is the tenant's active version.
    pub active: bool,
}
