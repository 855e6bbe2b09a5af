//! Watches on the embedded store: changes already in the log are replayed from it, then the committed changes under
//! the watch's prefix follow, handed over by the [`super::hub::Hub`]; a watcher that falls behind catches up from
//! the log.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::schema;
use super::{snapshot, Inner};
use crate::{Event, Revision, StoreError, WatchStream};

/// How many events a watch buffers for a slow consumer before it stops reading (and later catches up).
const WATCH_BUFFER: usize = 1024;

/// Starts a watch of `prefix` from revision `from` (0: from the next change on).
pub async fn start(inner: &Arc<Inner>, prefix: String, from: Revision) -> Result<WatchStream, StoreError> {
    // Subscribe before reading the log so that nothing committed after the read can be missed.
    let mut subscription = inner.hub.subscribe(&prefix);
    let (current, backlog) = catch_up(inner, &prefix, from).await?;
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let inner = Arc::downgrade(inner);
    tokio::spawn(async move {
        let mut next = current + 1;
        for event in backlog {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        loop {
            let received = tokio::select! {
                r = subscription.rx.recv() => r,
                () = tx.closed() => return,
            };
            let Some(delivery) = received else {
                let _ = tx.send(Err(StoreError::Unavailable("the embedded store is closed".into()))).await;
                return;
            };
            let mut events = Vec::new();
            if subscription.take_lagged() {
                // Some deliveries were dropped: what the log holds from `next` covers them.
                let Some(inner) = inner.upgrade() else { return };
                match catch_up(&inner, &prefix, next).await {
                    Ok((current, caught)) => {
                        next = current + 1;
                        events = caught;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if let Some(committed) = delivery {
                if committed.revision >= next {
                    next = committed.revision + 1;
                    events.extend(committed.events.iter().cloned());
                }
            }
            for event in events {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// The current revision and the logged changes under `prefix` from `from` up to it (none when `from` is 0);
/// [`StoreError::Compacted`] when `from` is older than the retained history.
async fn catch_up(inner: &Arc<Inner>, prefix: &str, from: Revision) -> Result<(Revision, Vec<Event>), StoreError> {
    let prefix = prefix.to_string();
    inner
        .read(move |conn| {
            snapshot(conn, |c| {
                let current = schema::current_revision(c)?;
                if from <= 0 || from > current {
                    return Ok((current.max(from - 1), Vec::new()));
                }
                let compacted = schema::meta(c, "compacted")?;
                if from < compacted {
                    return Err(StoreError::Compacted { requested: from, compacted });
                }
                Ok((current, schema::changes(c, &prefix, from, current)?))
            })
        })
        .await
}
