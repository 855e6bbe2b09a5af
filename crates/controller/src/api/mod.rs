//! The HTTP/JSON API of `fosd` (axum): apply, reads and deletes of every kind, the store view and watch, logs,
//! events, imperative entity verbs, `/healthz`, Prometheus `/metrics` and the web view's static files (`/ui/`,
//! [`ui`]). It is the only way `fosctl` and the web view talk to fos.
//!
//! Handlers only decode a request (path, query, JSON body, the [`crate::ops::Caller`]), call one operation of
//! [`crate::ops`] and map its error ([`error::ApiError`]); adding an endpoint is one handler and one route here.

pub mod admin;
pub mod apply;
pub mod caller;
pub mod entity;
pub mod error;
pub mod image;
pub mod json;
pub mod logs;
pub mod migrate;
pub mod node;
pub mod read;
pub mod remove;
pub mod serve;
pub mod store_view;
pub mod ui;

use std::sync::atomic::Ordering;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::ops::Caller;
use crate::Context;

/// The API's routes over `ctx`.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/ui", get(ui::root))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/style.css", get(ui::style))
        .route("/v1/apply", post(apply::apply))
        .route("/v1/apps", get(read::list_apps))
        .route("/v1/apps/{tenant}/{name}", get(read::get_app).delete(entity::delete))
        .route("/v1/entities", get(read::list_entities))
        .route("/v1/entities/{id}", get(read::get_entity))
        .route("/v1/entities/{tenant}/{name}/{action}", post(entity::lifecycle))
        .route("/v1/system", get(read::system))
        .route("/v1/nodes", get(read::list_nodes))
        .route("/v1/nodes/{name}", get(read::get_node))
        .route("/v1/nodes/{name}/cordon", post(node::cordon_node))
        .route("/v1/nodes/{name}/uncordon", post(node::uncordon_node))
        .route("/v1/nodes/{name}/drain", post(node::drain_node).get(node::drain_progress))
        .route("/v1/networks", get(read::list_networks))
        .route("/v1/networks/nodes", get(read::list_node_networks))
        .route("/v1/networks/{tenant}/{name}", delete(remove::network))
        .route("/v1/images/status", get(image::status))
        .route("/v1/images/{name}", delete(remove::image).post(image::upload).layer(DefaultBodyLimit::disable()))
        .route("/v1/images/{name}/content", get(image::content))
        .route("/v1/plugins/{name}", delete(remove::plugin))
        .route("/v1/secrets/{tenant}/{name}", delete(remove::secret))
        .route("/v1/plugins", get(read::list_plugins))
        .route("/v1/images", get(read::list_images))
        .route("/v1/events", get(read::list_events))
        .route("/v1/store", get(store_view::get))
        .route("/v1/watch", get(store_view::watch))
        .route("/v1/logs/{id}", get(logs::logs))
        .route("/v1/migrations", get(migrate::list))
        .route("/v1/migrations/{instance}", post(migrate::start).get(migrate::get))
        .route(
            "/v1/migrations/{instance}/data",
            get(migrate::received).put(migrate::append).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/migrations/{instance}/data/commit", post(migrate::commit))
        .route("/v1/migrations/{instance}/prepare", post(migrate::prepare))
        .route("/v1/tokens", post(admin::create_token).get(admin::list_tokens))
        .route("/v1/tokens/{id}", delete(admin::revoke_token))
        .route("/v1/tenants", get(admin::list_tenants))
        .route("/v1/tenants/{tenant}", put(admin::set_tenant))
        .route("/v1/secrets", get(admin::list_secrets))
        .layer(DefaultBodyLimit::max(fos_api::limits::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(ctx.clone(), count))
        .with_state(ctx)
}

async fn count(State(ctx): State<Context>, req: Request, next: Next) -> Response {
    ctx.metrics.api_requests.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

async fn metrics(State(ctx): State<Context>, _caller: Caller) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], ctx.metrics.render())
}

/// Serves the API on `listener` until `shutdown` resolves (HTTPS when `opts` has TLS), with the connection limits
/// of [`serve::ServeOptions`].
pub async fn serve(
    ctx: Context,
    listener: tokio::net::TcpListener,
    opts: serve::ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::serve(router(ctx), listener, opts, shutdown).await
}
