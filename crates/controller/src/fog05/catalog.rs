//! Networks, connection points, images and flavors. A fog05 virtual network becomes a Network object of the tenant
//! (converted by the codec; its descriptor kept in the `fog05/descriptor` annotation); an image is uploaded through
//! the image service (`image_upload`: hashed on the way, refused when it is not the descriptor's `checksum`) and
//! named from its uuid; flavors and connection points live in the tenant's fog05 catalog.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use fos_api::image::UploadQuery;
use fos_api::manifest::{ImageFormat, ObjectKind};
use fos_api::wire::ApplyRequest;
use fos_fog05::descriptor::{self, image_name, network_name, DescriptorKind};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::{json_object, new_uuid, Answer, Fog05State, Plain};
use crate::ops::{self, OpError};

/// The annotation keeping the fog05 descriptor an object was made from.
pub const DESCRIPTOR_ANNOTATION: &str = "fog05/descriptor";

/// A descriptor's `uuid`, given one when it has none.
fn with_uuid(m: &mut Map<String, Value>) -> String {
    match m.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => {
            let u = new_uuid();
            m.insert("uuid".into(), u.clone().into());
            u
        }
    }
}

/// Converts a descriptor through the codec; its errors as one invalid request.
pub fn convert(kind: DescriptorKind, m: &Map<String, Value>) -> Result<Vec<Value>, OpError> {
    descriptor::convert(kind, m).map(|c| c.into_iter().map(|c| c.value).collect()).map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .map(|e| {
                let at = if e.path.is_empty() { String::new() } else { format!("{}: ", e.path) };
                let hint = e.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
                format!("{at}{}{hint}", e.message)
            })
            .collect();
        OpError::invalid(text.join("; "))
    })
}

/// Applies converted objects in the state's tenant, each keeping `descriptor`.
pub async fn apply(s: &Fog05State, mut objects: Vec<Value>, descriptor: &Map<String, Value>) -> Result<(), OpError> {
    for o in &mut objects {
        o["metadata"]["tenant"] = s.tenant.clone().into();
        o["metadata"]["annotations"][DESCRIPTOR_ANNOTATION] = Value::Object(descriptor.clone()).to_string().into();
    }
    let req = ApplyRequest { objects, dry_run: false, prune_source: None };
    ops::apply::apply(&s.ctx, &s.caller, req).await.map(drop)
}

/// `POST /network/add`.
pub async fn network_add(State(s): State<Fog05State>, body: Bytes) -> Answer {
    let run = async {
        let mut m = json_object(&body)?;
        with_uuid(&mut m);
        let objects = convert(DescriptorKind::Network, &m)?;
        apply(&s, objects, &m).await?;
        Ok(Value::Object(m))
    };
    Answer(run.await)
}

/// `DELETE /network/remove/{net}`.
pub async fn network_remove(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Answer {
    let name = network_name(&uuid);
    Answer(ops::remove::remove(&s.ctx, &s.caller, ObjectKind::Network, &s.tenant, &name).await.map(|_| json!(uuid)))
}

/// `GET /network/list`: the tenant's networks as fog05 descriptors.
pub async fn network_list(State(s): State<Fog05State>) -> Plain {
    let run = async {
        let all = ops::read::networks(&s.ctx, &s.caller).await?;
        let mine = all.into_iter().filter(|n| n["metadata"]["tenant"].as_str().is_none_or(|t| t == s.tenant));
        Ok(json!(mine.map(|n| descriptor_of(&n)).collect::<Vec<_>>()))
    };
    Plain(run.await)
}

/// The fog05 descriptor of an object: the one it was made from, else its name and kind.
pub fn descriptor_of(object: &Value) -> Value {
    let annotations = &object["metadata"]["annotations"];
    if let Some(d) = annotations[DESCRIPTOR_ANNOTATION].as_str().and_then(|d| serde_json::from_str(d).ok()) {
        return d;
    }
    let name = object["metadata"]["name"].clone();
    json!({"uuid": annotations["fog05/uuid"].as_str().map_or(name.clone(), Value::from), "name": name,
           "net_type": "ELAN", "is_mgmt": false})
}

/// `POST /connection_point/add`.
pub async fn cp_add(State(s): State<Fog05State>, body: Bytes) -> Answer {
    let run = async {
        let mut m = json_object(&body)?;
        let uuid = with_uuid(&mut m);
        let value = Value::Object(m);
        ops::catalog::put(&s.ctx, &s.caller, &s.tenant, "cps", &uuid, &value).await?;
        Ok(value)
    };
    Answer(run.await)
}

/// `DELETE /connection_point/remove/{cp}`.
pub async fn cp_remove(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Answer {
    Answer(ops::catalog::remove(&s.ctx, &s.caller, &s.tenant, "cps", &uuid).await.map(|_| json!(uuid)))
}

/// `POST /image/add`: a multipart body, the `descriptor` (JSON: `uuid`, `name`, `checksum`, `format`) first, then
/// the `image` content, streamed into the image service and checked against the descriptor's sha256.
pub async fn image_add(State(s): State<Fog05State>, mut parts: Multipart) -> Answer {
    let run = async {
        let mut descriptor: Option<Map<String, Value>> = None;
        while let Some(field) = parts.next_field().await.map_err(|e| OpError::invalid(format!("multipart: {e}")))? {
            match field.name() {
                Some("descriptor") => {
                    let bytes = field.bytes().await.map_err(|e| OpError::invalid(format!("descriptor: {e}")))?;
                    descriptor = Some(json_object(&bytes)?);
                }
                Some("image") => {
                    let Some(mut d) = descriptor.take() else {
                        return Err(OpError::invalid("the `descriptor` part must come before the `image` part"));
                    };
                    let uuid = with_uuid(&mut d);
                    let checksum = d.get("checksum").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
                    if checksum.is_empty() {
                        return Err(OpError::invalid("the image descriptor needs its `checksum` (the sha256)"));
                    }
                    let format = match d.get("format").and_then(Value::as_str) {
                        Some(f) => Some(
                            serde_json::from_value::<ImageFormat>(json!(f))
                                .map_err(|_| OpError::invalid(format!("image format `{f}` is not one fos knows")))?,
                        ),
                        None => None,
                    };
                    let q = UploadQuery { format, sha256: Some(checksum) };
                    let stream = field.map(|r| r.map_err(|e| e.to_string()));
                    let name = image_name(&uuid);
                    let view = ops::image_upload::upload(&s.ctx, &s.caller, &name, &q, Box::pin(stream)).await?;
                    d.insert("uri".into(), view.uri.clone().into());
                    let value = Value::Object(d);
                    ops::catalog::put(&s.ctx, &s.caller, &s.tenant, "images", &uuid, &value).await?;
                    return Ok(json!(true));
                }
                _ => {}
            }
        }
        Err(OpError::invalid("an image upload needs a `descriptor` part and an `image` part"))
    };
    Answer(run.await)
}

/// `GET /image/{image}`.
pub async fn image_get(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Plain {
    Plain(ops::catalog::get(&s.ctx, &s.caller, &s.tenant, "images", &uuid).await)
}

/// `GET /image/list`.
pub async fn image_list(State(s): State<Fog05State>) -> Plain {
    Plain(ops::catalog::list(&s.ctx, &s.caller, &s.tenant, "images").await.map(Value::from))
}

/// `DELETE /image/{image}`: the Image (refused while an entity uses it), then its catalog entry.
pub async fn image_remove(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Answer {
    let run = async {
        ops::catalog::get(&s.ctx, &s.caller, &s.tenant, "images", &uuid).await?;
        match ops::remove::remove(&s.ctx, &s.caller, ObjectKind::Image, "", &image_name(&uuid)).await {
            Ok(_) | Err(OpError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        ops::catalog::remove(&s.ctx, &s.caller, &s.tenant, "images", &uuid).await?;
        Ok(json!(uuid))
    };
    Answer(run.await)
}

/// `POST /flavor/add`.
pub async fn flavor_add(State(s): State<Fog05State>, body: Bytes) -> Answer {
    let run = async {
        let mut m = json_object(&body)?;
        let uuid = with_uuid(&mut m);
        convert(DescriptorKind::Flavor, &m)?;
        let value = Value::Object(m);
        ops::catalog::put(&s.ctx, &s.caller, &s.tenant, "flavors", &uuid, &value).await?;
        Ok(value)
    };
    Answer(run.await)
}

/// `GET /flavor/{flavor}`.
pub async fn flavor_get(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Plain {
    Plain(ops::catalog::get(&s.ctx, &s.caller, &s.tenant, "flavors", &uuid).await)
}

/// `GET /flavor/list`.
pub async fn flavor_list(State(s): State<Fog05State>) -> Plain {
    Plain(ops::catalog::list(&s.ctx, &s.caller, &s.tenant, "flavors").await.map(Value::from))
}

/// `DELETE /flavor/{flavor}`.
pub async fn flavor_remove(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Answer {
    Answer(ops::catalog::remove(&s.ctx, &s.caller, &s.tenant, "flavors", &uuid).await.map(|_| json!(true)))
}
