//! The seed's store view: `GET /v1/store?uri=afos://0/**` lists the keys an `afos://`/`dfos://` URI matches
//! (with `*` and `**`), and `GET /v1/watch?uri=…` streams their changes as newline-delimited JSON.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fos_api::wire::{StoreEntry, WatchEvent};
use fos_api::StoreUri;
use fos_store::{EventKind, KeyValue};
use futures::StreamExt;
use serde::Deserialize;

use super::error::ApiError;
use crate::Context;

/// The query of the store view and watch.
#[derive(Debug, Deserialize)]
pub struct UriQuery {
    /// An `afos://` or `dfos://` URI.
    pub uri: String,
}

fn entry(kv: &KeyValue) -> StoreEntry {
    let value = serde_json::from_slice(&kv.value)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&kv.value).into_owned()));
    StoreEntry { key: kv.key.clone(), value, mod_revision: kv.mod_revision }
}

fn parse(uri: &str) -> Result<StoreUri, ApiError> {
    StoreUri::parse(uri).map_err(|e| ApiError::invalid(e.to_string()))
}

/// `GET /v1/store?uri=…`.
pub async fn get(State(ctx): State<Context>, Query(q): Query<UriQuery>) -> Result<Json<Vec<StoreEntry>>, ApiError> {
    let uri = parse(&q.uri)?;
    let list = ctx.store.list(&uri.prefix()).await?;
    Ok(Json(list.kvs.iter().filter(|kv| uri.matches(&kv.key)).map(entry).collect()))
}

/// `GET /v1/watch?uri=…`: the current entries as `put` events, then every change, one JSON object per line.
pub async fn watch(State(ctx): State<Context>, Query(q): Query<UriQuery>) -> Result<Response, ApiError> {
    let uri = parse(&q.uri)?;
    let list = ctx.store.list(&uri.prefix()).await?;
    let stream = ctx.store.watch(&uri.prefix(), list.revision + 1).await?;
    let initial: Vec<WatchEvent> = list
        .kvs
        .iter()
        .filter(|kv| uri.matches(&kv.key))
        .map(|kv| WatchEvent { kind: "put".into(), entry: entry(kv) })
        .collect();
    let matcher = uri.clone();
    let changes = stream.filter_map(move |ev| {
        let out = match ev {
            Ok(ev) if matcher.matches(&ev.kv.key) => {
                let mut e = entry(&ev.kv);
                let kind = match ev.kind {
                    EventKind::Put => "put",
                    EventKind::Delete => {
                        e.value = serde_json::Value::Null;
                        "delete"
                    }
                };
                Some(WatchEvent { kind: kind.into(), entry: e })
            }
            _ => None,
        };
        futures::future::ready(out)
    });
    let lines = futures::stream::iter(initial).chain(changes).map(|ev| {
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(line)
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
