//! AuthZEN 1.0: `/access/v1/evaluation(s)` and the search APIs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::JsonObject;

/// An AuthZEN subject or resource.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct AzEntity {
    /// Its type: `agent`, `token` (subject only: `id` is an access token we
    /// issued), or a type of the tenant's schema.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its id.
    pub id: String,
    /// Attributes supplied by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An AuthZEN action.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct AzAction {
    /// Its name.
    pub name: String,
    /// Attributes: `context.action` in policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §6.1: an access evaluation request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationRequest {
    /// Who.
    pub subject: AzEntity,
    /// Does what.
    pub action: AzAction,
    /// To what.
    pub resource: AzEntity,
    /// In what circumstances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §6.2: the decision.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationResponse {
    /// Allowed or not.
    pub decision: bool,
    /// Why: determining policies, errors, reasons, approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

/// One item of an AuthZEN evaluations request: overrides of the defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct EvaluationItem {
    /// Subject.
    #[serde(default)]
    pub subject: Option<AzEntity>,
    /// Action.
    #[serde(default)]
    pub action: Option<AzAction>,
    /// Resource.
    #[serde(default)]
    pub resource: Option<AzEntity>,
    /// Context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §7.1.2: options of an evaluations request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    #[serde(default)]
    pub evaluations_semantic: Option<String>,
}

/// AuthZEN 1.0 §7.1: many evaluations, with defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsRequest {
    /// Default subject.
    #[serde(default)]
    pub subject: Option<AzEntity>,
    /// Default action.
    #[serde(default)]
    pub action: Option<AzAction>,
    /// Default resource.
    #[serde(default)]
    pub resource: Option<AzEntity>,
    /// Default context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// The evaluations (absent or empty: the defaults are one evaluation).
    #[serde(default)]
    pub evaluations: Option<Vec<EvaluationItem>>,
    /// Options.
    #[serde(default)]
    pub options: Option<EvaluationsOptions>,
}

/// AuthZEN 1.0 §7.2: decisions in request order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsResponse {
    /// One per evaluation (fewer when a short-circuit semantic stopped early).
    pub evaluations: Vec<EvaluationResponse>,
}

/// The answer of `POST /access/v1/evaluations`: many decisions, or (AuthZEN
/// 1.0 §7.1: a request without `evaluations`) a single one.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EvaluationsAnswer {
    /// One decision per evaluation.
    Many(EvaluationsResponse),
    /// The defaults as one evaluation.
    One(EvaluationResponse),
}

/// AuthZEN 1.0 §9: the PDP's metadata.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthzenConfiguration {
    /// The PDP's identifier (its base URL).
    pub policy_decision_point: String,
    /// `POST` one evaluation.
    pub access_evaluation_endpoint: String,
    /// `POST` many evaluations.
    pub access_evaluations_endpoint: String,
    /// `POST` a subject search (§8.4).
    pub search_subject_endpoint: String,
    /// `POST` a resource search (§8.5).
    pub search_resource_endpoint: String,
    /// `POST` an action search (§8.6).
    pub search_action_endpoint: String,
}

/// A subject or resource of an AuthZEN search: the one searched for names
/// only its `type` (an `id`, if sent, is ignored).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct AzSearchEntity {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its id (required for the parts that are not searched for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attributes supplied by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §8.2: paging of a search request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct SearchPage {
    /// The `next_token` of the previous page of the same search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// At most this many results (default 100, at most 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// AuthZEN 1.0 §8: a subject, resource or action search. Which parts are
/// required depends on the search: the searched part names only a type (or,
/// for actions, is left out).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct SearchRequest {
    /// The subject.
    #[serde(default)]
    pub subject: Option<AzSearchEntity>,
    /// The action (not in an action search).
    #[serde(default)]
    pub action: Option<AzAction>,
    /// The resource.
    #[serde(default)]
    pub resource: Option<AzSearchEntity>,
    /// Circumstances, as in an evaluation.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// Paging.
    #[serde(default)]
    pub page: Option<SearchPage>,
}

/// AuthZEN 1.0 §8.2: paging of a search response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchPageResponse {
    /// Pass as `page.token` for the next page; empty on the last page.
    pub next_token: String,
    /// How many results this page holds.
    pub count: u64,
}

/// A subject or resource found.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AzFound {
    /// Its type (as asked).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its id.
    pub id: String,
}

/// AuthZEN 1.0 §8.4, §8.5: the subjects or resources the decision allows.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EntitySearchResponse {
    /// This page's results.
    pub results: Vec<AzFound>,
    /// Paging.
    pub page: SearchPageResponse,
}

/// An action found.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AzActionName {
    /// Its name.
    pub name: String,
}

/// AuthZEN 1.0 §8.6: the actions the decision allows.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionSearchResponse {
    /// This page's results.
    pub results: Vec<AzActionName>,
    /// Paging.
    pub page: SearchPageResponse,
}

/// Implements `TryFrom<JsonObject>` for a request part through a private
/// mirror struct with the same fields (so arrays are refused).
macro_rules! from_object {
    ($ty:ident, $mirror:ident { $($(#[$attr:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        struct $mirror {
            $($(#[$attr])* $field: $fty,)*
        }
        impl TryFrom<JsonObject> for $ty {
            type Error = serde_json::Error;
            fn try_from(m: JsonObject) -> Result<Self, Self::Error> {
                let f: $mirror = serde_json::from_value(serde_json::Value::Object(m))?;
                Ok($ty { $($field: f.$field,)* })
            }
        }
    };
}

from_object!(AzEntity, AzEntityFields {
    #[serde(rename = "type")]
    type_: String,
    id: String,
    #[serde(default)]
    properties: Option<JsonObject>,
});

from_object!(AzAction, AzActionFields {
    name: String,
    #[serde(default)]
    properties: Option<JsonObject>,
});

from_object!(AzSearchEntity, AzSearchEntityFields {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    properties: Option<JsonObject>,
});

from_object!(SearchPage, SearchPageFields {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
});

from_object!(EvaluationItem, EvaluationItemFields {
    #[serde(default)]
    subject: Option<AzEntity>,
    #[serde(default)]
    action: Option<AzAction>,
    #[serde(default)]
    resource: Option<AzEntity>,
    #[serde(default)]
    context: Option<JsonObject>,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_request_parts_must_be_objects() {
        let ok: EvaluationsRequest =
            serde_json::from_str(r#"{"evaluations": [{"subject": {"type": "agent", "id": "a"}}]}"#).unwrap();
        assert_eq!(ok.evaluations.unwrap()[0].subject.as_ref().unwrap().id, "a");
        assert!(serde_json::from_str::<EvaluationsRequest>(r#"{"evaluations": [[null, null]]}"#).is_err());
        assert!(
            serde_json::from_str::<EvaluationRequest>(
                r#"{"subject": ["agent", "a"], "action": {"name": "x"}, "resource": {"type": "t", "id": "i"}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<EvaluationRequest>(
                r#"{"subject": {"type": "agent", "id": "a"}, "action": ["x"], "resource": {"type": "t", "id": "i"}}"#
            )
            .is_err()
        );
    }
}
