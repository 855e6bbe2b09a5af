//! The seed's imperative lifecycle on a standalone entity (`fosctl entity configure|run|stop|pause|resume|clean|
//! undefine NAME`): each verb is checked against the entity's actual state with the one lifecycle state machine,
//! then recorded as the state the entity is asked to reach (the `fos/state` annotation) for the controller to drive.

use fos_api::wire::{AppView, ENTITY_VERBS, STATE_ANNOTATION};
use fos_api::{Action, InstanceId, Lifecycle, Object, State};
use fos_store::records::{ActualInstances, Apps, Change};

use super::{Caller, OpError};
use crate::Context;

/// The state a verb asks for (`None`: undefine, the entity goes away).
fn target(action: Action) -> Option<State> {
    match action {
        Action::Configure | Action::Stop => Some(State::Configured),
        Action::Run | Action::Resume => Some(State::Running),
        Action::Pause => Some(State::Paused),
        Action::Define | Action::Clean => Some(State::Defined),
        _ => None,
    }
}

/// Parses an entity verb (`configure`, `run`, …).
pub fn parse_verb(verb: &str) -> Result<Action, OpError> {
    match Action::ALL.into_iter().find(|a| a.as_str() == verb) {
        Some(a) if ENTITY_VERBS.contains(&a) => Ok(a),
        Some(a) => Err(OpError::invalid(format!("`{a}` is not an entity verb"))),
        None => Err(OpError::invalid(format!("unknown lifecycle verb `{verb}`"))),
    }
}

/// Asks the standalone entity `tenant`/`name` to take `action`, when its lifecycle allows it from the state its node
/// reports. Answers the record as changed.
pub async fn set_state(
    ctx: &Context,
    caller: &Caller,
    tenant: &str,
    name: &str,
    action: Action,
) -> Result<AppView, OpError> {
    caller.check_write(tenant, || format!("entity {tenant}/{name}"))?;
    if !ENTITY_VERBS.contains(&action) {
        return Err(OpError::invalid(format!("`{action}` is not an entity verb")));
    }
    let want = target(action);
    // The verb is checked against what the node reports, with the one lifecycle state machine.
    let records = ctx.records();
    let id = InstanceId::new(tenant, name, name, 0);
    let (actual, _) = records.list::<ActualInstances>().await?;
    let mut lifecycle =
        actual.into_iter().find(|((_, i), _)| i == &id).map(|(_, a)| a.value.lifecycle).unwrap_or_else(Lifecycle::new);
    if let Err(err) = lifecycle.apply(action) {
        return Err(OpError::Conflict(format!("{name}: {err}")));
    }
    let what = format!("entity {tenant}/{name}");
    let (record, _) = records
        .update::<Apps, OpError, _>(&(tenant.to_string(), name.to_string()), |current| {
            let Some(rec) = current else {
                return Err(OpError::NotFound(format!("{what} not found (define it first)")));
            };
            let mut rec = rec.clone();
            let Object::Entity(entity) = &mut rec.object else {
                return Err(OpError::Conflict(format!(
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
            Ok(Change::Put(rec))
        })
        .await?;
    let record = record.ok_or_else(|| OpError::NotFound(format!("entity {tenant}/{name} not found")))?;
    Ok(AppView { record, status: None })
}
