//! `get --watch`: after the list, every row (or object, with `-o yaml|json`) that changes is printed again, kubectl
//! style. Changes come from the API's watch stream (`/v1/watch` on the kind's keys): each burst of events is
//! followed by one list and the rows that differ are printed; a row that disappears is printed once more as
//! `<deleted>`. Kinds whose keys a token cannot watch (nodes, images and plugins for non-administrators) are listed
//! again every two seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use fos_api::wire::SystemInfo;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::get::{list, GetArgs, Listing};
use super::output::print_objects;
use super::{Global, Output, Resource};
use crate::client::{encode_query, Client};

/// How long a burst of watch events is gathered before listing again.
const SETTLE: Duration = Duration::from_millis(100);
/// How often the list is read without a watch event.
const TICK: Duration = Duration::from_secs(2);

/// The store URIs a kind's rows come from.
pub fn uris(resource: Resource, sys: &str) -> Vec<String> {
    let paths: &[&str] = match resource {
        Resource::Apps => &["dfos://{}/apps/**", "afos://{}/apps/**"],
        Resource::Entities => &["dfos://{}/nodes/*/instances/**", "afos://{}/nodes/*/instances/**"],
        Resource::Nodes => &["afos://{}/nodes/*/info", "afos://{}/heartbeats/*"],
        Resource::Networks => &["dfos://{}/networks/**"],
        Resource::Images => &["dfos://{}/images/**"],
        Resource::Plugins => &["dfos://{}/nodes/*/plugins/**", "afos://{}/nodes/*/plugins/**"],
        // Secrets are not watched; migrations live under system/, which no URI names: listed on every tick.
        Resource::Secrets | Resource::Migrations => &[],
    };
    paths.iter().map(|p| p.replace("{}", sys)).collect()
}

/// Rows (or objects) by the name in their first cell.
fn keyed(l: &Listing) -> BTreeMap<String, (Vec<String>, Value)> {
    l.rows
        .iter()
        .zip(l.objects.iter().chain(std::iter::repeat(&Value::Null)))
        .map(|(r, o)| (r.first().cloned().unwrap_or_default(), (r.clone(), o.clone())))
        .collect()
}

/// The rows of `new` that differ from `old`, and the rows of `old` gone from `new` (marked `<deleted>`).
pub fn changed(
    old: &BTreeMap<String, (Vec<String>, Value)>,
    new: &BTreeMap<String, (Vec<String>, Value)>,
) -> Vec<(Vec<String>, Value)> {
    let mut out: Vec<(Vec<String>, Value)> =
        new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(_, v)| v.clone()).collect();
    for (k, (row, _)) in old.iter().filter(|(k, _)| !new.contains_key(*k)) {
        let mut gone = vec![k.clone(), "<deleted>".to_string()];
        gone.extend(std::iter::repeat_n(String::new(), row.len().saturating_sub(2)));
        out.push((gone, Value::Null));
    }
    out
}

/// Prints what changes after `first` until interrupted.
pub async fn follow(client: &Client, global: &Global, args: &GetArgs, first: Listing) -> anyhow::Result<()> {
    let sys: SystemInfo = client.get("/v1/system").await?;
    let (tx, mut rx) = mpsc::channel::<()>(256);
    for uri in uris(args.resource, &sys.system) {
        let (client, tx) = (client.clone(), tx.clone());
        tokio::spawn(async move {
            let Ok(resp) = client.stream(&format!("/v1/watch?uri={}", encode_query(&uri))).await else { return };
            let mut body = resp.bytes_stream();
            while let Some(Ok(_)) = body.next().await {
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut last = keyed(&first);
    let mut open = true;
    loop {
        tokio::select! {
            got = rx.recv(), if open => {
                if got.is_none() {
                    open = false;
                    continue;
                }
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(TICK) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let now = list(client, global, args).await?;
        let next = keyed(&now);
        let diff = changed(&last, &next);
        last = next;
        if diff.is_empty() {
            continue;
        }
        match args.output {
            Output::Yaml | Output::Json => {
                let objects: Vec<Value> = diff.into_iter().map(|(_, o)| o).filter(|o| !o.is_null()).collect();
                if !objects.is_empty() {
                    for o in &objects {
                        if args.output == Output::Yaml {
                            println!("---");
                        }
                        print_objects(std::slice::from_ref(o), args.output == Output::Json, true)?;
                    }
                }
            }
            _ => {
                let rows: Vec<Vec<String>> = diff.into_iter().map(|(r, _)| r).collect();
                let text = now.table(&rows).render();
                for line in text.lines().skip(1) {
                    println!("{line}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[&[&str]]) -> BTreeMap<String, (Vec<String>, Value)> {
        list.iter().map(|r| (r[0].to_string(), (r.iter().map(|c| c.to_string()).collect(), Value::Null))).collect()
    }

    #[test]
    fn only_changed_and_deleted_rows_are_printed_again() {
        let old = rows(&[&["a", "Running", "1/1"], &["b", "Running", "1/1"], &["c", "Pending", "0/1"]]);
        let new = rows(&[&["a", "Running", "1/1"], &["b", "Degraded", "0/1"], &["d", "Pending", "0/1"]]);
        let out: Vec<Vec<String>> = changed(&old, &new).into_iter().map(|(r, _)| r).collect();
        assert_eq!(out, vec![vec!["b", "Degraded", "0/1"], vec!["d", "Pending", "0/1"], vec!["c", "<deleted>", ""]]);
    }

    #[test]
    fn every_kind_but_secrets_is_watched_in_its_system() {
        assert_eq!(uris(Resource::Apps, "7"), vec!["dfos://7/apps/**", "afos://7/apps/**"]);
        assert!(uris(Resource::Secrets, "0").is_empty());
    }
}
