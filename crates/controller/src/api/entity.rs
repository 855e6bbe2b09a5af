//! The seed's imperative lifecycle on a standalone entity (`fosctl entity configure|run|stop|pause|resume|clean|
//! undefine NAME`): each verb is checked against the entity's actual state with the one lifecycle state machine,
//! then recorded as the state the entity is asked to reach (the `fos/state` annotation) for the controller to drive.

use axum::extract::{Path, State};
use axum::Json;
use fos_api::wire::{AppView, STATE_ANNOTATION};
use fos_api::{Action, InstanceId, Lifecycle, Object, State as LifecycleState};

use super::app_record::update_app;
use super::error::ApiError;
use crate::Context;

/// The state a verb asks for (`None`: undefine, the entity goes away).
fn target(action: Action) -> Result<Option<LifecycleState>, ApiError> {
    Ok(match action {
        Action::Define | Action::Clean => Some(LifecycleState::Defined),
        Action::Configure | Action::Stop => Some(LifecycleState::Configured),
        Action::Run | Action::Resume => Some(LifecycleState::Running),
        Action::Pause => Some(LifecycleState::Paused),
        Action::Undefine => None,
        other => return Err(ApiError::invalid(format!("`{other}` is not an entity verb"))),
    })
}

/// `POST /v1/entities/{tenant}/{name}/{action}`.
pub async fn lifecycle(
    State(ctx): State<Context>,
    Path((tenant, name, verb)): Path<(String, String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let action = Action::ALL
        .into_iter()
        .find(|a| a.as_str() == verb)
        .ok_or_else(|| ApiError::invalid(format!("unknown lifecycle verb `{verb}`")))?;
    let want = target(action)?;
    // The verb is checked against what the node reports, with the one lifecycle state machine.
    let id = InstanceId::new(&tenant, &name, &name, 0);
    let actual = ctx.store.list(&ctx.keys.actual_nodes_prefix()).await?;
    let suffix = format!("/instances/{id}");
    let mut lifecycle = actual
        .kvs
        .iter()
        .filter(|kv| kv.key.ends_with(&suffix))
        .find_map(|kv| serde_json::from_slice::<fos_api::ActualInstance>(&kv.value).ok())
        .map(|a| a.lifecycle)
        .unwrap_or_else(Lifecycle::new);
    if let Err(err) = lifecycle.apply(action) {
        return Err(ApiError::Conflict(format!("{name}: {err}")));
    }
    let key = ctx.keys.desired_app(&tenant, &name);
    let what = format!("entity {tenant}/{name}");
    let not_found = || ApiError::NotFound(format!("{what} not found (define it first)"));
    let record = update_app(&ctx, &key, &what, not_found, |rec| {
        let Object::Entity(entity) = &mut rec.object else {
            return Err(ApiError::Conflict(format!(
                "{name} is an application; entity verbs act on standalone entities (use apply/delete)"
            )));
        };
        match want {
            Some(s) => {
                entity.metadata.annotations.insert(STATE_ANNOTATION.to_string(), s.as_str().to_string());
            }
            None => rec.deleting = true,
        }
        rec.generation += 1;
        Ok(true)
    })
    .await?;
    Ok(Json(AppView { record, status: None }))
}
