//! The store conformance suite: the same test functions, run against every backend through
//! [`conformance_tests!`](crate::conformance_tests), so that both behave as etcd does.

pub mod cases;
pub mod election;

use std::sync::Arc;
use std::time::Duration;

use fos_store::{Event, EventKind, Store, StoreError, WatchStream};
use futures::StreamExt;

/// A generous bound on waiting for something that must happen (a test fails instead of hanging).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The next event of a watch, failing the test when none comes.
pub async fn next_event(watch: &mut WatchStream) -> Event {
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Ok(Some(Ok(e))) => e,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

/// The next `n` events as (kind, key, value) triples.
pub async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<(EventKind, String, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = next_event(watch).await;
        out.push((e.kind, e.kv.key, e.kv.value));
    }
    out
}

/// Whether `r` is the compaction error.
pub fn is_compacted<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Compacted { .. }))
}

/// A shared store handle.
pub type DynStore = Arc<dyn Store>;

/// Generates one `#[tokio::test]` per conformance case; `$make` is an async fn returning `(guard, Arc<dyn Store>)`,
/// the guard keeping the backend alive for the test.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path; $($case:ident => $func:path),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, store) = $make().await;
                $func(store).await;
            }
        )*
    };
    ($make:path) => {
        $crate::conformance_tests!($make;
            put_get_and_revisions => conformance::cases::put_get_and_revisions,
            list_by_prefix => conformance::cases::list_by_prefix,
            delete_and_delete_prefix => conformance::cases::delete_and_delete_prefix,
            txn_compare_and_swap => conformance::cases::txn_compare_and_swap,
            txn_is_atomic_in_one_revision => conformance::cases::txn_is_atomic_in_one_revision,
            watch_ordering_and_prefix => conformance::cases::watch_ordering_and_prefix,
            watch_resumes_from_revision => conformance::cases::watch_resumes_from_revision,
            list_then_watch_loses_nothing => conformance::cases::list_then_watch_loses_nothing,
            lease_expiry_notifies_watchers => conformance::cases::lease_expiry_notifies_watchers,
            keep_alive_keeps_keys => conformance::cases::keep_alive_keeps_keys,
            revoke_deletes_keys => conformance::cases::revoke_deletes_keys,
            compaction_error => conformance::cases::compaction_error,
            election_resign_hands_over => conformance::election::resign_hands_over,
            election_lease_expiry_hands_over => conformance::election::lease_expiry_hands_over,
            lease_keeper_reports_loss => conformance::election::lease_keeper_reports_loss,
        );
    };
}
