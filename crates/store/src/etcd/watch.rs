//! Watches on etcd that survive the member they talk to: when the stream breaks, the watch is created again on the
//! next endpoint from the revision after the last event delivered, so no event is lost or repeated.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponseStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::endpoints::{Attempt, Endpoints};
use super::key_value;
use crate::{Event, EventKind, Revision, StoreError, WatchStream};

/// How many events a watch buffers for a slow consumer.
const WATCH_BUFFER: usize = 1024;

/// A created etcd watch: the response stream (its request half kept open) and the revision it starts at.
struct Created {
    _requests: etcd_client::WatchRequestSender,
    responses: WatchResponseStream,
    next: Revision,
}

/// Creates a watch of `prefix` from `from` (0: from the next change) on whichever endpoint answers.
async fn create(endpoints: &Endpoints, prefix: &str, from: Revision) -> Result<Created, StoreError> {
    endpoints
        .call(|c| async move {
            // Progress notifications move the resume point forward while the prefix is quiet, so that a resume
            // after a long idle time does not ask for history compaction has already discarded.
            let mut options = WatchOptions::new().with_progress_notify();
            options = if prefix.is_empty() { options.with_all_keys() } else { options.with_prefix() };
            if from > 0 {
                options = options.with_start_revision(from);
            }
            let stream = c
                .watch_client()
                .max_decoding_message_size(super::MAX_MESSAGE)
                .watch(prefix.as_bytes(), Some(options))
                .await
                .map_err(super::endpoints::classify)?;
            let (requests, mut responses) = stream.split();
            // etcd reports a compacted start revision only after the creation: ask for it directly, so that the
            // caller gets the error from `watch` itself rather than on the stream.
            let compacted_start = from > 0
                && matches!(
                    c.kv_client()
                        .get(prefix.as_bytes(), Some(GetOptions::new().with_revision(from).with_count_only()))
                        .await
                        .map_err(super::endpoints::classify),
                    Err(Attempt::Fail(StoreError::Compacted { .. }))
                );
            let created = responses
                .message()
                .await
                .map_err(super::endpoints::classify)?
                .ok_or_else(|| Attempt::Retry("watch stream closed before it was created".into()))?;
            if created.compact_revision() > 0 {
                return Err(Attempt::Fail(StoreError::Compacted {
                    requested: from,
                    compacted: created.compact_revision(),
                }));
            }
            if compacted_start {
                let mut compacted = 0;
                while let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::from_secs(5), responses.message()).await {
                    if r.compact_revision() > 0 {
                        compacted = r.compact_revision();
                        break;
                    }
                }
                return Err(Attempt::Fail(StoreError::Compacted { requested: from, compacted }));
            }
            if created.canceled() {
                return Err(Attempt::Retry(format!("watch canceled: {}", created.cancel_reason())));
            }
            let current = created.header().map_or(0, |h| h.revision());
            let next = if from > 0 { from } else { current + 1 };
            Ok(Created { _requests: requests, responses, next })
        })
        .await
}

/// Starts a watch; the first creation's errors (the compaction error above all) are returned directly.
pub async fn start(endpoints: Arc<Endpoints>, prefix: String, from: Revision) -> Result<WatchStream, StoreError> {
    let first = create(&endpoints, &prefix, from).await?;
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(async move {
        let mut watch = first;
        loop {
            let next = forward(&mut watch, &tx).await;
            let Some(next) = next else { return };
            // The stream broke: resume from the revision after the last event delivered.
            tracing::info!(prefix, next, "etcd watch interrupted, resuming");
            loop {
                if tx.is_closed() {
                    return;
                }
                match create(&endpoints, &prefix, next).await {
                    Ok(w) => {
                        watch = w;
                        break;
                    }
                    Err(e @ StoreError::Compacted { .. }) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(prefix, error = %e, "etcd watch cannot resume yet");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Forwards events until the stream breaks (returns the revision to resume from) or the receiver is gone (`None`).
async fn forward(watch: &mut Created, tx: &mpsc::Sender<Result<Event, StoreError>>) -> Option<Revision> {
    loop {
        let message = tokio::select! {
            m = watch.responses.message() => m,
            () = tx.closed() => return None,
        };
        let response = match message {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return Some(watch.next),
        };
        if response.compact_revision() > 0 {
            let compacted = StoreError::Compacted { requested: watch.next, compacted: response.compact_revision() };
            let _ = tx.send(Err(compacted)).await;
            return None;
        }
        if response.canceled() {
            return Some(watch.next);
        }
        if response.events().is_empty() {
            if let Some(header) = response.header() {
                watch.next = watch.next.max(header.revision() + 1);
            }
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let kind = match event.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => EventKind::Delete,
            };
            let kv = key_value(kv);
            watch.next = watch.next.max(kv.mod_revision + 1);
            if tx.send(Ok(Event { kind, kv })).await.is_err() {
                return None;
            }
        }
    }
}
