//! The fog05 REST API (`fosd --fog05-rest ADDR --fog05-rest-tenant T`): the routes the `fog05rest` Python client
//! (0.0.4, what OSM's fos VIM connector imports) calls, with the bodies and answers it expects (`{"result": …}`,
//! `{"error": …}`). Like the native API, handlers only decode a request, call operations of [`crate::ops`] (apply,
//! the entity verbs, delete, remove, the image upload, reads, the fog05 catalog) and shape the answer through the
//! fog05 codec ([`fos_fog05::shapes`]).
//!
//! fog05 clients cannot authenticate, so the listener acts for one tenant only, and serves loopback only unless
//! `--fog05-rest-insecure` (`fosd` then warns at every start). Node and instance identifiers are uuids: a node's is
//! derived from the system and its name ([`node_uuid`]); an FDU instance is the standalone Entity `i-<uuid>`,
//! pinned to its node ([`fos_api::wire::NODE_ANNOTATION`]; a migration moves the pin with it).
//!
//! | module | routes |
//! |---|---|
//! | [`infra`] | `/`, `/node/list|info|status|plugins`, `/plugin/info` |
//! | [`catalog`] | `/network/*`, `/connection_point/*`, `/image/*`, `/flavor/*` |
//! | [`fdu`] | `/fdu/*`: onboard, offload, define … terminate, migrate, instance and FDU reads |

pub mod catalog;
pub mod fdu;
pub mod infra;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use fos_api::auth::Role;
use serde_json::{json, Value};

use crate::ops::{Caller, OpError, Tenants};
use crate::Context;

/// The listener's settings.
#[derive(Debug, Clone)]
pub struct Fog05Rest {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The one tenant it acts for.
    pub tenant: String,
    /// Whether it may listen on other addresses than loopback.
    pub insecure: bool,
}

impl Fog05Rest {
    /// What the node warns its operators of when the listener is reachable beyond loopback (`--fog05-rest-insecure`
    /// on another address): logged at every start and published in the node's status (`fosctl get nodes`).
    pub fn warning(&self) -> Option<String> {
        (self.insecure && !self.listen.ip().is_loopback()).then(|| {
            format!(
                "the fog05 REST API on {} has no authentication (--fog05-rest-insecure): anyone who reaches it acts \
                 for tenant {}",
                self.listen, self.tenant
            )
        })
    }

    /// Refuses a listener that would expose the unauthenticated API beyond this machine without `insecure`.
    pub fn check(&self) -> Result<(), String> {
        fos_api::validate_name(&self.tenant).map_err(|e| format!("--fog05-rest-tenant: {e}"))?;
        if !self.insecure && !self.listen.ip().is_loopback() {
            return Err(format!(
                "refusing --fog05-rest {}: the fog05 REST API has no authentication, so it listens on loopback only \
                 (127.0.0.1, ::1) unless --fog05-rest-insecure is given",
                self.listen
            ));
        }
        Ok(())
    }
}

/// What every handler gets: the context, the tenant, and the caller acting for it.
#[derive(Clone)]
pub struct Fog05State {
    /// The operations' context.
    pub ctx: Context,
    /// The tenant.
    pub tenant: String,
    /// The caller every operation is called as: the tenant's administrator (images are cluster-wide).
    pub caller: Caller,
}

impl Fog05State {
    /// The state for `tenant`.
    pub fn new(ctx: Context, tenant: &str) -> Self {
        let caller = Caller {
            principal: format!("fog05-rest ({tenant})"),
            tenants: Tenants::Only(BTreeSet::from([tenant.to_string()])),
            role: Role::Admin,
        };
        Fog05State { ctx, tenant: tenant.to_string(), caller }
    }

    /// The system id.
    pub fn system(&self) -> String {
        crate::ops::read::system(&self.ctx, &self.caller).system
    }
}

/// A fog05 answer: `{"result": …}` or, with a status code, `{"error": …}`.
pub struct Answer(Result<Value, OpError>);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(v) => Json(json!({ "result": v })).into_response(),
            Err(e) => {
                let status = match &e {
                    OpError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    OpError::NotFound(_) => StatusCode::NOT_FOUND,
                    OpError::Conflict(_) => StatusCode::CONFLICT,
                    OpError::Forbidden(_) | OpError::Unauthenticated(_) => StatusCode::FORBIDDEN,
                    OpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    OpError::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
                    OpError::Upstream(_) => StatusCode::BAD_GATEWAY,
                    OpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, Json(json!({ "error": e.to_string() }))).into_response()
            }
        }
    }
}

impl From<Result<Value, OpError>> for Answer {
    fn from(r: Result<Value, OpError>) -> Self {
        Answer(r)
    }
}

/// A plain answer (the reads fog05 answers without `result`), or `{"error": …}`.
pub struct Plain(Result<Value, OpError>);

impl IntoResponse for Plain {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(v) => Json(v).into_response(),
            Err(e) => Answer(Err(e)).into_response(),
        }
    }
}

impl From<Result<Value, OpError>> for Plain {
    fn from(r: Result<Value, OpError>) -> Self {
        Plain(r)
    }
}

/// A uuid derived from `parts` (SHA-256, formatted as a version-8 uuid): stable across restarts and nodes.
pub fn derived_uuid(parts: &[&str]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("\0").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The uuid fog05 knows node `name` of `system` by.
pub fn node_uuid(system: &str, name: &str) -> String {
    derived_uuid(&["node", system, name])
}

/// A fresh uuid (instances, descriptors without one).
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads a JSON body, refusing what is not a JSON object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, OpError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(OpError::invalid("the body must be a JSON object (a fog05 descriptor)")),
        Err(e) => Err(OpError::invalid(format!("the body is not JSON: {e}"))),
    }
}

/// The routes over `state`.
pub fn router(state: Fog05State) -> Router {
    Router::new()
        .route("/", get(infra::index))
        .route("/node/list", get(infra::node_list))
        .route("/node/info/{node}", get(infra::node_info))
        .route("/node/status/{node}", get(infra::node_status))
        .route("/node/plugins/{node}", get(infra::node_plugins))
        .route("/plugin/info/{plugin}/{node}", get(infra::plugin_info))
        .route("/network/add", post(catalog::network_add))
        .route("/network/remove/{net}", delete(catalog::network_remove))
        .route("/network/list", get(catalog::network_list))
        .route("/connection_point/add", post(catalog::cp_add))
        .route("/connection_point/remove/{cp}", delete(catalog::cp_remove))
        .route("/image/add", post(catalog::image_add).layer(DefaultBodyLimit::disable()))
        .route("/image/list", get(catalog::image_list))
        .route("/image/{image}", get(catalog::image_get).delete(catalog::image_remove))
        .route("/flavor/add", post(catalog::flavor_add))
        .route("/flavor/list", get(catalog::flavor_list))
        .route("/flavor/{flavor}", get(catalog::flavor_get).delete(catalog::flavor_remove))
        .route("/fdu/onboard", post(fdu::onboard))
        .route("/fdu/offload/{fdu}", delete(fdu::offload))
        .route("/fdu/define/{fdu}/{node}", post(fdu::define))
        .route("/fdu/instantiate/{fdu}/{node}", post(fdu::instantiate))
        .route("/fdu/undefine/{instance}", delete(fdu::undefine))
        .route("/fdu/terminate/{instance}", post(fdu::terminate))
        .route("/fdu/migrate/{instance}/{node}", post(fdu::migrate))
        .route("/fdu/{verb}/{instance}", post(fdu::verb))
        .route("/fdu/list", get(fdu::list))
        .route("/fdu/info/{fdu}", get(fdu::info))
        .route("/fdu/instance_info/{instance}", get(fdu::instance_info))
        .route("/fdu/instance_list/{fdu}", get(fdu::instance_list))
        .route("/fdu/get_nodes/{fdu}", get(fdu::get_nodes))
        .route("/fdu/list_node/{node}", get(fdu::list_node))
        .layer(DefaultBodyLimit::max(fos_api::limits::MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the fog05 REST API on `listener` (plain HTTP, as fog05 clients speak) until `shutdown` resolves.
pub async fn serve(
    state: Fog05State,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(listen: &str, insecure: bool) -> Fog05Rest {
        Fog05Rest { listen: listen.parse().unwrap(), tenant: "osm".into(), insecure }
    }

    #[test]
    fn the_listener_is_loopback_only_unless_insecure() {
        assert_eq!(rest("127.0.0.1:8080", false).check(), Ok(()));
        assert_eq!(rest("[::1]:8080", false).check(), Ok(()));
        assert!(rest("0.0.0.0:8080", false).check().unwrap_err().contains("loopback only"));
        assert_eq!(rest("0.0.0.0:8080", true).check(), Ok(()));
        let bad = Fog05Rest { tenant: "Not A Tenant".into(), ..rest("127.0.0.1:1", false) };
        assert!(bad.check().unwrap_err().contains("--fog05-rest-tenant"));
    }

    #[test]
    fn derived_uuids_are_stable_version_8_uuids() {
        let a = node_uuid("0", "edge-1");
        assert_eq!(a, node_uuid("0", "edge-1"));
        assert_ne!(a, node_uuid("0", "edge-2"));
        assert_ne!(a, node_uuid("1", "edge-1"));
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
    }
}
