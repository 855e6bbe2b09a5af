//! FDUs and their instances. Onboarding keeps the descriptor in the tenant's catalog (checked by the codec); an
//! instance is the standalone Entity `i-<uuid>` converted from it, pinned to the node asked for, driven by the
//! entity verbs (`define` applies it asked to stay Defined, `instantiate` to run; `configure`, `start`, `stop`,
//! `pause`, `resume`, `clean` and `undefine` are the verbs; `terminate` deletes it; `migrate` moves it to another
//! node with fos's migration, its pin following). As fog05's API does, each call answers once the node reports the
//! state reached (or the error that stopped it).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use fos_api::migration::{MigrateRequest, MigrationPhase};
use fos_api::wire::{EntityView, ListQuery, NODE_ANNOTATION, STATE_ANNOTATION};
use fos_api::{Action, Object, State as Lifecycle};
use fos_fog05::descriptor::{runtime_of, DescriptorKind};
use fos_fog05::shapes::{self, InstanceParts};
use serde_json::{json, Value};

use super::catalog::{apply, convert};
use super::{infra, json_object, new_uuid, node_uuid, Answer, Fog05State, Plain};
use crate::ops::{self, OpError};

/// How long a call waits for the node to report the state asked for.
const WAIT: Duration = Duration::from_secs(120);

/// The entity an instance is.
fn entity_name(instance: &str) -> String {
    format!("i-{instance}")
}

/// `POST /fdu/onboard`.
pub async fn onboard(State(s): State<Fog05State>, body: Bytes) -> Answer {
    let run = async {
        let mut m = json_object(&body)?;
        let uuid = match m.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
            Some(u) => u.to_string(),
            None => {
                let u = new_uuid();
                m.insert("uuid".into(), u.clone().into());
                u
            }
        };
        convert(DescriptorKind::Fdu, &m)?;
        let value = Value::Object(m);
        ops::catalog::put(&s.ctx, &s.caller, &s.tenant, "fdus", &uuid, &value).await?;
        Ok(value)
    };
    Answer(run.await)
}

/// An FDU instance: its uuid, its FDU's and its entity's view.
struct Instance {
    uuid: String,
    fdu: String,
    node: String,
    view: Option<EntityView>,
}

/// The tenant's FDU instances.
async fn instances(s: &Fog05State) -> Result<Vec<Instance>, OpError> {
    let q = ListQuery { tenant: Some(s.tenant.clone()), ..ListQuery::default() };
    let apps = ops::read::apps(&s.ctx, &s.caller, &q).await?;
    let mut views = ops::read::entities(&s.ctx, &s.caller, &q).await?;
    let mut out = Vec::new();
    for app in apps {
        let Object::Entity(e) = &app.record.object else { continue };
        let a = &e.metadata.annotations;
        let (Some(uuid), Some(fdu)) = (a.get("fog05/instance"), a.get("fog05/fdu")) else { continue };
        let view = views.iter().position(|v| v.id.app == e.metadata.name).map(|i| views.swap_remove(i));
        // Where it is placed (a migration moves it), else where it is pinned.
        let placed = view.as_ref().and_then(|v| v.desired.as_ref()).map(|d| d.node.clone());
        let node = placed.or_else(|| a.get(NODE_ANNOTATION).cloned()).unwrap_or_default();
        out.push(Instance { uuid: uuid.clone(), fdu: fdu.clone(), node, view });
    }
    Ok(out)
}

async fn instance(s: &Fog05State, uuid: &str) -> Result<Instance, OpError> {
    instances(s)
        .await?
        .into_iter()
        .find(|i| i.uuid == uuid)
        .ok_or_else(|| OpError::NotFound(format!("FDU instance {uuid} not found")))
}

/// Waits until instance `uuid` reports `target` (`None`: until it is gone).
async fn wait(s: &Fog05State, uuid: &str, target: Option<Lifecycle>) -> Result<(), OpError> {
    let start = Instant::now();
    loop {
        let found = instances(s).await?.into_iter().find(|i| i.uuid == uuid);
        let actual = found.as_ref().and_then(|i| i.view.as_ref()).and_then(|v| v.actual.as_ref());
        match (target, &found) {
            (None, None) => return Ok(()),
            (Some(want), Some(_)) if actual.and_then(|a| a.state()) == Some(want) => return Ok(()),
            (Some(_), None) => return Err(OpError::NotFound(format!("FDU instance {uuid} is gone"))),
            _ => {}
        }
        if let Some(a) = actual.filter(|a| a.state() == Some(Lifecycle::Error)) {
            let why = a.error.clone().unwrap_or_else(|| "the node reports an error".into());
            return Err(OpError::Conflict(format!("FDU instance {uuid}: {why}")));
        }
        if start.elapsed() > WAIT {
            let what = target.map_or("to be gone".to_string(), |t| format!("to reach {t}"));
            return Err(OpError::Upstream(format!("FDU instance {uuid}: waited {WAIT:?} {what}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The instance record of `uuid`.
async fn record(s: &Fog05State, uuid: &str) -> Result<Value, OpError> {
    let i = instance(s, uuid).await?;
    let fdu = ops::catalog::get(&s.ctx, &s.caller, &s.tenant, "fdus", &i.fdu).await.unwrap_or(Value::Null);
    let node = node_uuid(&s.system(), &i.node);
    let parts = InstanceParts {
        uuid: &i.uuid,
        fdu_uuid: &i.fdu,
        node_uuid: &node,
        fdu: &fdu,
        desired: i.view.as_ref().and_then(|v| v.desired.as_ref()),
        actual: i.view.as_ref().and_then(|v| v.actual.as_ref()),
    };
    Ok(shapes::instance_record(&parts))
}

/// Applies a new instance of FDU `fdu` on node `node` (asked to stay Defined, or to run) and waits for it.
async fn create(s: &Fog05State, fdu: &str, node: &str, defined_only: bool) -> Result<Value, OpError> {
    let desc = ops::catalog::get(&s.ctx, &s.caller, &s.tenant, "fdus", fdu).await?;
    let Value::Object(m) = desc else { return Err(OpError::Conflict(format!("FDU {fdu} is not a descriptor"))) };
    let target = infra::node(s, node).await?;
    let hv = m.get("hypervisor").or_else(|| m.get("hypervisor_type")).and_then(Value::as_str).unwrap_or("");
    let kind = runtime_of(hv).map_err(OpError::Conflict)?;
    if !target.spec.runtimes.iter().any(|k| k.as_str() == kind) {
        return Err(OpError::Conflict(format!(
            "node {node} ({}) offers no {hv} runtime (fos {kind}); it runs: {}",
            target.metadata.name,
            target.spec.runtimes.iter().map(|k| shapes::hypervisor(*k)).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut objects = convert(DescriptorKind::Fdu, &m)?;
    let uuid = new_uuid();
    for o in &mut objects {
        if let Some(arch) = o["metadata"]["annotations"]["fog05/cpu-arch"].as_str() {
            if arch != target.spec.arch.as_str() {
                return Err(OpError::Conflict(format!(
                    "FDU {fdu} needs cpu_arch {arch}; node {node} ({}) is {}",
                    target.metadata.name,
                    target.spec.arch.as_str()
                )));
            }
        }
        o["metadata"]["name"] = entity_name(&uuid).into();
        let a = &mut o["metadata"]["annotations"];
        a["fog05/instance"] = uuid.clone().into();
        a["fog05/fdu"] = fdu.into();
        a[NODE_ANNOTATION] = target.metadata.name.clone().into();
        if defined_only {
            a[STATE_ANNOTATION] = Lifecycle::Defined.as_str().into();
        }
    }
    apply(s, objects, &m).await?;
    let want = if defined_only { Lifecycle::Defined } else { Lifecycle::Running };
    wait(s, &uuid, Some(want)).await?;
    record(s, &uuid).await
}

/// `POST /fdu/define/{fdu}/{node}`.
pub async fn define(State(s): State<Fog05State>, Path((fdu, node)): Path<(String, String)>) -> Answer {
    Answer(create(&s, &fdu, &node, true).await)
}

/// `POST /fdu/instantiate/{fdu}/{node}`: define, configure and start.
pub async fn instantiate(State(s): State<Fog05State>, Path((fdu, node)): Path<(String, String)>) -> Answer {
    Answer(create(&s, &fdu, &node, false).await)
}

/// `POST /fdu/{verb}/{instance}`: `configure`, `start`, `stop`, `pause`, `resume`, `clean`.
pub async fn verb(State(s): State<Fog05State>, Path((verb, uuid)): Path<(String, String)>) -> Answer {
    let (action, target) = match verb.as_str() {
        "configure" => (Action::Configure, Lifecycle::Configured),
        "start" | "run" => (Action::Run, Lifecycle::Running),
        "stop" => (Action::Stop, Lifecycle::Configured),
        "pause" => (Action::Pause, Lifecycle::Paused),
        "resume" => (Action::Resume, Lifecycle::Running),
        "clean" => (Action::Clean, Lifecycle::Defined),
        other => return Answer(Err(OpError::NotFound(format!("no FDU verb `{other}`")))),
    };
    let run = async {
        instance(&s, &uuid).await?;
        ops::set_state::set_state(&s.ctx, &s.caller, &s.tenant, &entity_name(&uuid), action).await?;
        wait(&s, &uuid, Some(target)).await?;
        Ok(json!(uuid))
    };
    Answer(run.await)
}

/// `POST /fdu/migrate/{instance}/{node}`: moves a running instance to another node with fos's migration (cold
/// unless its FDU says `LIVE`); it keeps its uuid, and its pin follows it. Answers its record once it runs there (or
/// the error that stopped the migration, the instance then running where it was).
pub async fn migrate(State(s): State<Fog05State>, Path((uuid, node)): Path<(String, String)>) -> Answer {
    let run = async {
        instance(&s, &uuid).await?;
        let target = infra::node(&s, &node).await?.metadata.name;
        let name = entity_name(&uuid);
        let req = MigrateRequest { to: Some(target.clone()), ..MigrateRequest::default() };
        let started = ops::migrate::migrate(&s.ctx, &s.caller, &name, &req).await?;
        let begun = Instant::now();
        loop {
            let m = ops::migrate::get(&s.ctx, &s.caller, &name).await?;
            if m.id != started.id {
                return Err(OpError::Conflict(format!("FDU instance {uuid}: another migration replaced this one")));
            }
            match m.phase {
                MigrationPhase::Completed => break,
                MigrationPhase::Failed | MigrationPhase::Aborted => {
                    let why = m.message.unwrap_or_else(|| m.phase.to_string());
                    return Err(OpError::Conflict(format!("FDU instance {uuid}: migration to {target}: {why}")));
                }
                _ if begun.elapsed() > WAIT => {
                    return Err(OpError::Upstream(format!(
                        "FDU instance {uuid}: waited {WAIT:?} for its migration to {target} ({})",
                        m.phase
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        wait(&s, &uuid, Some(Lifecycle::Running)).await?;
        record(&s, &uuid).await
    };
    Answer(run.await)
}

/// `DELETE /fdu/undefine/{instance}`.
pub async fn undefine(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Answer {
    let run = async {
        instance(&s, &uuid).await?;
        ops::set_state::set_state(&s.ctx, &s.caller, &s.tenant, &entity_name(&uuid), Action::Undefine).await?;
        wait(&s, &uuid, None).await?;
        Ok(json!(uuid))
    };
    Answer(run.await)
}

/// `POST /fdu/terminate/{instance}`: stop, clean and undefine, whatever state it is in.
pub async fn terminate(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Answer {
    let run = async {
        instance(&s, &uuid).await?;
        ops::delete::delete(&s.ctx, &s.caller, &s.tenant, &entity_name(&uuid)).await?;
        wait(&s, &uuid, None).await?;
        Ok(json!(uuid))
    };
    Answer(run.await)
}

/// `DELETE /fdu/offload/{fdu}`: refused while instances of it exist.
pub async fn offload(State(s): State<Fog05State>, Path(fdu): Path<String>) -> Answer {
    let run = async {
        let n = instances(&s).await?.iter().filter(|i| i.fdu == fdu).count();
        if n > 0 {
            return Err(OpError::Conflict(format!("FDU {fdu} has {n} instance(s): terminate them first")));
        }
        ops::catalog::remove(&s.ctx, &s.caller, &s.tenant, "fdus", &fdu).await?;
        Ok(json!(fdu))
    };
    Answer(run.await)
}

/// `GET /fdu/list`.
pub async fn list(State(s): State<Fog05State>) -> Plain {
    Plain(ops::catalog::list(&s.ctx, &s.caller, &s.tenant, "fdus").await.map(Value::from))
}

/// `GET /fdu/info/{fdu}`.
pub async fn info(State(s): State<Fog05State>, Path(fdu): Path<String>) -> Plain {
    Plain(ops::catalog::get(&s.ctx, &s.caller, &s.tenant, "fdus", &fdu).await)
}

/// `GET /fdu/instance_info/{instance}`.
pub async fn instance_info(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Plain {
    Plain(record(&s, &uuid).await)
}

/// `GET /fdu/instance_list/{fdu}`: `{node uuid: [instance uuids]}`.
pub async fn instance_list(State(s): State<Fog05State>, Path(fdu): Path<String>) -> Plain {
    let run = async {
        let system = s.system();
        let mut out = serde_json::Map::new();
        for i in instances(&s).await?.into_iter().filter(|i| i.fdu == fdu) {
            let list = out.entry(node_uuid(&system, &i.node)).or_insert_with(|| json!([]));
            if let Value::Array(l) = list {
                l.push(i.uuid.into());
            }
        }
        Ok(Value::Object(out))
    };
    Plain(run.await)
}

/// `GET /fdu/get_nodes/{fdu}`: the nodes its instances are on.
pub async fn get_nodes(State(s): State<Fog05State>, Path(fdu): Path<String>) -> Plain {
    let run = async {
        let system = s.system();
        let mut nodes: Vec<String> =
            instances(&s).await?.into_iter().filter(|i| i.fdu == fdu).map(|i| node_uuid(&system, &i.node)).collect();
        nodes.sort();
        nodes.dedup();
        Ok(json!(nodes))
    };
    Plain(run.await)
}

/// `GET /fdu/list_node/{node}`: the FDUs with instances on the node.
pub async fn list_node(State(s): State<Fog05State>, Path(node): Path<String>) -> Plain {
    let run = async {
        let system = s.system();
        let mut fdus: Vec<String> =
            instances(&s).await?.into_iter().filter(|i| node_uuid(&system, &i.node) == node).map(|i| i.fdu).collect();
        fdus.sort();
        fdus.dedup();
        Ok(json!(fdus))
    };
    Plain(run.await)
}
