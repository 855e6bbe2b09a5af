//! The seed's imperative lifecycle on a standalone entity (`fosctl entity configure|run|stop|pause|resume|clean|
//! undefine NAME`): each verb is checked against the entity's actual state with the one lifecycle state machine,
//! then recorded as the state the entity is asked to reach (the `fos/state` annotation) for the controller to drive.

use axum::extract::{Path, State};
use axum::Json;
use fos_api::wire::{AppRecord, AppView, STATE_ANNOTATION};
use fos_api::{Action, InstanceId, Lifecycle, Object, State as LifecycleState};
use fos_store::{Compare, Txn, TxnOp};

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
    let key = ctx.keys.desired_app(&tenant, &name);
    for _ in 0..5 {
        let kv = ctx
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("entity {tenant}/{name} not found (define it first)")))?;
        let mut rec: AppRecord = crate::reconcile::decode_app(&key, &kv.value)?;
        let Object::Entity(entity) = &mut rec.object else {
            return Err(ApiError::Conflict(format!(
                "{name} is an application; entity verbs act on standalone entities (use apply/delete)"
            )));
        };
        let id = InstanceId::new(&tenant, &name, &name, 0);
        let actual = ctx.store.list(&ctx.keys.actual_nodes_prefix()).await?;
        let state = actual
            .kvs
            .iter()
            .filter(|kv| kv.key.ends_with(&format!("/instances/{id}")))
            .find_map(|kv| serde_json::from_slice::<fos_api::ActualInstance>(&kv.value).ok())
            .map(|a| a.lifecycle)
            .unwrap_or_else(Lifecycle::new);
        if !state.allows(action) {
            let err = state.clone_refusal(action);
            return Err(ApiError::Conflict(format!("{name}: {err}")));
        }
        match want {
            Some(s) => {
                entity.metadata.annotations.insert(STATE_ANNOTATION.to_string(), s.as_str().to_string());
            }
            None => rec.deleting = true,
        }
        rec.generation += 1;
        let value = serde_json::to_vec(&rec).map_err(|e| ApiError::invalid(e.to_string()))?;
        let txn = Txn {
            compare: vec![Compare::mod_revision(key.clone(), kv.mod_revision)],
            success: vec![TxnOp::Put { key: key.clone(), value, lease: None }],
            failure: Vec::new(),
        };
        if ctx.store.txn(txn).await?.succeeded {
            return Ok(Json(AppView { record: rec, status: None }));
        }
    }
    Err(ApiError::Conflict(format!("entity {tenant}/{name} kept changing; try again")))
}

/// The refusal of a step, as the lifecycle states it.
trait Refusal {
    fn clone_refusal(&self, action: Action) -> fos_api::TransitionError;
}

impl Refusal for Lifecycle {
    fn clone_refusal(&self, action: Action) -> fos_api::TransitionError {
        let mut l = *self;
        match l.apply(action) {
            Err(e) => e,
            Ok(_) => fos_api::TransitionError { from: self.state, action },
        }
    }
}
