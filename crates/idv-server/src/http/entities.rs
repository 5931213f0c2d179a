//! `/v1/entities`: the tenant's directory of Cedar entities.

use axum::extract::State;
use axum::http::StatusCode;
use idv_api::{EntitiesPut, EntityView};
use idv_core::directory::{DirectoryEntity, EntityRef};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path};
use crate::AppState;
use crate::app::{self, Caller};

fn entity_view(e: DirectoryEntity) -> EntityView {
    EntityView {
        uid: json!(e.uid),
        attrs: e.attrs,
        parents: e.parents.iter().map(|p| json!(p)).collect(),
    }
}

/// Create or replace directory entities (Cedar's entity JSON: `uid`,
/// `attrs`, `parents`), all or nothing.
#[utoipa::path(post, path = "/v1/entities", tag = "policies", request_body = EntitiesPut,
    responses((status = 200, body = Object), (status = 422, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn put_entities(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<EntitiesPut>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut entities = Vec::with_capacity(body.entities.len());
    for (i, v) in body.entities.into_iter().enumerate() {
        let e: DirectoryEntity = serde_json::from_value(v).map_err(|e| {
            ApiError::invalid_field(
                &format!("entities[{i}]"),
                format!("`entities[{i}]`: {e} (expected `{{\"uid\": {{\"type\", \"id\"}}, \"attrs\": {{…}}, \"parents\": [{{\"type\", \"id\"}}]}}`)"),
            )
        })?;
        entities.push(e);
    }
    let n = app::policies::put_entities(&state, &caller, entities).await?;
    Ok(axum::Json(json!({ "stored": n })))
}

/// The tenant's directory.
#[utoipa::path(get, path = "/v1/entities", tag = "policies",
    responses((status = 200, body = Vec<EntityView>)), security(("bearer" = [])))]
pub async fn entities(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<EntityView>>, ApiError> {
    let items = app::policies::directory(&state, &caller).await?;
    Ok(axum::Json(items.into_iter().map(entity_view).collect()))
}

/// Remove a directory entity.
#[utoipa::path(delete, path = "/v1/entities/{type}/{id}", tag = "policies",
    params(("type" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn delete_entity(
    State(state): State<AppState>,
    caller: Caller,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app::policies::delete_entity(&state, &caller, EntityRef { type_name, id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_entities, entities))
        .routes(routes!(delete_entity))
}
