//! The embedded store's single writer: one thread owns the write connection and applies commands in batches, one
//! SQLite transaction per batch (group commit), then answers the callers and publishes the committed changes to
//! watchers in revision order.

use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use super::reserve::{self, Reserve};
use super::schema::{self, db_err};
use crate::{CompareTarget, Event, EventKind, KeyValue, LeaseId, Revision, StoreError, Txn, TxnOp, TxnResult};

/// The most commands committed in one SQLite transaction.
const MAX_BATCH: usize = 512;

/// The changes committed at one revision, as published to watchers.
#[derive(Debug)]
pub struct Committed {
    /// The revision.
    pub revision: Revision,
    /// The changes, in order.
    pub events: Vec<Event>,
}

/// The answer to a transaction command, with the number of keys its writes deleted.
#[derive(Debug)]
pub struct Applied {
    /// The transaction's result.
    pub result: TxnResult,
    /// How many keys were deleted.
    pub deleted: u64,
}

/// What the writer can be asked to do.
pub enum Command {
    /// Run a transaction.
    Txn(Txn, oneshot::Sender<Result<Applied, StoreError>>),
    /// Grant a lease.
    Grant(Duration, oneshot::Sender<Result<LeaseId, StoreError>>),
    /// Refresh a lease.
    KeepAlive(LeaseId, oneshot::Sender<Result<(), StoreError>>),
    /// End a lease and delete its keys.
    Revoke(LeaseId, oneshot::Sender<Result<(), StoreError>>),
    /// Discard history before a revision.
    Compact(Revision, oneshot::Sender<Result<(), StoreError>>),
    /// End every expired lease.
    SweepLeases,
    /// Compact history older than the window behind the current revision.
    AutoCompact(i64),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// What one command produced inside the batch's transaction, answered once the batch commits.
enum Outcome {
    Txn(Result<Applied, StoreError>),
    Lease(Result<LeaseId, StoreError>),
    Unit(Result<(), StoreError>),
    None,
}

impl Outcome {
    fn failed(&self) -> bool {
        match self {
            Outcome::Txn(r) => r.is_err(),
            Outcome::Lease(r) => r.is_err(),
            Outcome::Unit(r) => r.is_err(),
            Outcome::None => false,
        }
    }
}

/// The writer's state.
pub struct Writer {
    conn: Connection,
    revision: Revision,
    events: broadcast::Sender<std::sync::Arc<Committed>>,
    reserve: Reserve,
}

impl Writer {
    /// A writer over `conn` publishing to `events`, holding `reserve` for when the disk fills up.
    pub fn new(
        conn: Connection,
        events: broadcast::Sender<std::sync::Arc<Committed>>,
        reserve: Reserve,
    ) -> Result<Self, StoreError> {
        let revision = schema::current_revision(&conn)?;
        Ok(Writer { conn, revision, events, reserve })
    }

    /// Gives every lease a fresh TTL (after a restart, as etcd does: time while the store was down does not count).
    pub fn renew_all_leases(&mut self) -> Result<(), StoreError> {
        self.conn.execute("UPDATE lease SET expires_ms = ?1 + ttl_ms", [now_ms()]).map_err(db_err)?;
        Ok(())
    }

    /// Applies commands until every sender is gone.
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.apply_batch(batch);
        }
    }

    /// Applies one batch; when the disk is full, gives back the reserved space and tries once more, so deletes and
    /// lease renewals still go through (and free space) when everything else has filled the disk.
    fn apply_batch(&mut self, batch: Vec<Command>) {
        let mut result = self.try_batch(&batch);
        if matches!(&result, Err(e) if reserve::is_full(e)) && self.reserve.release() {
            tracing::warn!("the store's disk is full: released the reserved space to keep deletes and leases going");
            result = self.try_batch(&batch);
        }
        match result {
            Err(e) => {
                // Nothing of this batch is stored: fail every command of it.
                let message = e.to_string();
                for command in batch {
                    command.answer(Outcome::None, Some(&message));
                }
            }
            Ok((outcomes, committed)) => {
                for c in committed {
                    // No receiver is not an error: nobody watches.
                    let _ = self.events.send(std::sync::Arc::new(c));
                }
                for (command, outcome) in batch.into_iter().zip(outcomes) {
                    command.answer(outcome, None);
                }
            }
        }
        self.reserve.restore_when_room();
    }

    /// Runs the batch in one SQLite transaction: the outcome of each command and what was committed, or nothing.
    fn try_batch(&mut self, batch: &[Command]) -> Result<(Vec<Outcome>, Vec<Committed>), StoreError> {
        let start_revision = self.revision;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut committed = Vec::new();
        let outcome = (|| -> Result<(), StoreError> {
            let mut tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(db_err)?;
            for command in batch {
                outcomes.push(apply_command(&mut tx, &mut self.revision, command, &mut committed)?);
            }
            tx.commit().map_err(db_err)
        })();
        match outcome {
            Ok(()) => Ok((outcomes, committed)),
            Err(e) => {
                self.revision = start_revision;
                Err(e)
            }
        }
    }
}

impl Command {
    /// Answers the caller: the outcome, or `failure` for the whole batch.
    fn answer(self, outcome: Outcome, failure: Option<&str>) {
        let err = |m: &str| StoreError::Database(m.to_string());
        match (self, outcome, failure) {
            (Command::Txn(_, s), _, Some(m)) => drop(s.send(Err(err(m)))),
            (Command::Grant(_, s), _, Some(m)) => drop(s.send(Err(err(m)))),
            (Command::KeepAlive(_, s) | Command::Revoke(_, s) | Command::Compact(_, s), _, Some(m)) => {
                drop(s.send(Err(err(m))))
            }
            (Command::Txn(_, s), Outcome::Txn(r), None) => drop(s.send(r)),
            (Command::Grant(_, s), Outcome::Lease(r), None) => drop(s.send(r)),
            (Command::KeepAlive(_, s) | Command::Revoke(_, s) | Command::Compact(_, s), Outcome::Unit(r), None) => {
                drop(s.send(r))
            }
            _ => {}
        }
    }
}

/// Runs one command inside a savepoint, so that a command failing leaves the batch's other commands intact.
/// A database error on the savepoint itself aborts the batch.
fn apply_command(
    tx: &mut Transaction<'_>,
    revision: &mut Revision,
    command: &Command,
    committed: &mut Vec<Committed>,
) -> Result<Outcome, StoreError> {
    let mut sp = tx.savepoint().map_err(db_err)?;
    let before = *revision;
    let mut changes = Vec::new();
    let outcome = match command {
        Command::Txn(txn, _) => Outcome::Txn(run_txn(&sp, revision, txn, &mut changes)),
        Command::Grant(ttl, _) => Outcome::Lease(grant(&sp, *ttl)),
        Command::KeepAlive(id, _) => Outcome::Unit(keep_alive(&sp, *id)),
        Command::Revoke(id, _) => Outcome::Unit(revoke(&sp, revision, *id, &mut changes)),
        Command::Compact(rev, _) => Outcome::Unit(compact(&sp, *revision, *rev)),
        Command::SweepLeases => {
            sweep(&sp, revision, committed)?;
            Outcome::None
        }
        Command::AutoCompact(window) => {
            let target = *revision - window;
            if target > schema::meta(&sp, "compacted")? {
                compact(&sp, *revision, target)?;
            }
            Outcome::None
        }
    };
    if outcome.failed() {
        *revision = before;
        sp.rollback().map_err(db_err)?;
    } else {
        sp.commit().map_err(db_err)?;
        if !changes.is_empty() {
            committed.push(Committed { revision: *revision, events: changes });
        }
    }
    Ok(outcome)
}

/// The next revision for a command's first change (all changes of one command share it).
fn bump(revision: &mut Revision, before: Revision, changes: &[Event]) -> Revision {
    if changes.is_empty() && *revision == before {
        *revision += 1;
    }
    *revision
}

fn compare_holds(conn: &Connection, txn: &Txn) -> Result<bool, StoreError> {
    for c in &txn.compare {
        let current = schema::get(conn, &c.key)?;
        let holds = match (&c.target, &current) {
            (CompareTarget::ModRevision(r), kv) => kv.as_ref().map_or(0, |kv| kv.mod_revision) == *r,
            (CompareTarget::CreateRevision(r), kv) => kv.as_ref().map_or(0, |kv| kv.create_revision) == *r,
            (CompareTarget::Value(v), Some(kv)) => &kv.value == v,
            (CompareTarget::Value(_), None) => false,
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

fn lease_exists(conn: &Connection, id: LeaseId) -> Result<bool, StoreError> {
    let n: i64 = conn
        .query_row("SELECT count(*) FROM lease WHERE id = ?1 AND expires_ms > ?2", params![id, now_ms()], |r| r.get(0))
        .map_err(db_err)?;
    Ok(n > 0)
}

fn run_txn(
    conn: &Connection,
    revision: &mut Revision,
    txn: &Txn,
    changes: &mut Vec<Event>,
) -> Result<Applied, StoreError> {
    let before = *revision;
    let succeeded = compare_holds(conn, txn)?;
    let ops = if succeeded { &txn.success } else { &txn.failure };
    let mut gets = Vec::new();
    let mut deleted = 0;
    for op in ops {
        match op {
            TxnOp::Put { key, value, lease } => {
                let lease = lease.unwrap_or(0);
                if lease != 0 && !lease_exists(conn, lease)? {
                    return Err(StoreError::LeaseNotFound(lease));
                }
                let rev = bump(revision, before, changes);
                let create = schema::get(conn, key)?.map_or(rev, |kv| kv.create_revision);
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: create,
                    mod_revision: rev,
                    lease,
                };
                write_change(conn, &kv, changes.len() as i64, false)?;
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev, lease) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db_err)?
                .execute(params![key.as_bytes(), value, create, rev, lease])
                .map_err(db_err)?;
                changes.push(Event { kind: EventKind::Put, kv });
            }
            TxnOp::Delete { key } => {
                if schema::get(conn, key)?.is_some() {
                    delete_keys(conn, revision, before, vec![key.clone()], changes)?;
                    deleted += 1;
                }
            }
            TxnOp::DeletePrefix { prefix } => {
                let keys: Vec<String> = schema::list(conn, prefix)?.into_iter().map(|kv| kv.key).collect();
                deleted += keys.len() as u64;
                delete_keys(conn, revision, before, keys, changes)?;
            }
            TxnOp::Get { key } => gets.push(schema::get(conn, key)?),
        }
    }
    Ok(Applied { result: TxnResult { succeeded, revision: *revision, gets }, deleted })
}

fn write_change(conn: &Connection, kv: &KeyValue, sub: i64, deleted: bool) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO log (rev, sub, key, value, create_rev, lease, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .map_err(db_err)?
    .execute(params![kv.mod_revision, sub, kv.key.as_bytes(), kv.value, kv.create_revision, kv.lease, deleted])
    .map_err(db_err)?;
    Ok(())
}

fn delete_keys(
    conn: &Connection,
    revision: &mut Revision,
    before: Revision,
    keys: Vec<String>,
    changes: &mut Vec<Event>,
) -> Result<(), StoreError> {
    for key in keys {
        let rev = bump(revision, before, changes);
        let kv = KeyValue { key, value: Vec::new(), create_revision: 0, mod_revision: rev, lease: 0 };
        write_change(conn, &kv, changes.len() as i64, true)?;
        conn.prepare_cached("DELETE FROM kv WHERE key = ?1")
            .map_err(db_err)?
            .execute([kv.key.as_bytes()])
            .map_err(db_err)?;
        changes.push(Event { kind: EventKind::Delete, kv });
    }
    Ok(())
}

fn grant(conn: &Connection, ttl: Duration) -> Result<LeaseId, StoreError> {
    let id = schema::meta(conn, "lease_seq")? + 1;
    schema::set_meta(conn, "lease_seq", id)?;
    let ttl_ms = (ttl.as_millis() as i64).max(1);
    conn.execute(
        "INSERT INTO lease (id, ttl_ms, expires_ms) VALUES (?1, ?2, ?3)",
        params![id, ttl_ms, now_ms() + ttl_ms],
    )
    .map_err(db_err)?;
    Ok(id)
}

fn keep_alive(conn: &Connection, id: LeaseId) -> Result<(), StoreError> {
    if !lease_exists(conn, id)? {
        // Expired (the sweeper deletes it and its keys shortly): a late keep-alive never revives it.
        return Err(StoreError::LeaseNotFound(id));
    }
    conn.execute("UPDATE lease SET expires_ms = ?2 + ttl_ms WHERE id = ?1", params![id, now_ms()]).map_err(db_err)?;
    Ok(())
}

/// Deletes the lease and its keys (one revision); whether the lease existed.
/// The keys bound to a lease. `lease != 0` lets SQLite use the partial index `kv_by_lease` (it cannot tell that a
/// bound parameter is not 0): without it every lease's end scans the whole table.
const KEYS_OF_LEASE: &str = "SELECT key FROM kv WHERE lease = ?1 AND lease != 0 ORDER BY key";

fn end_lease(
    conn: &Connection,
    revision: &mut Revision,
    id: LeaseId,
    changes: &mut Vec<Event>,
) -> Result<bool, StoreError> {
    let before = *revision;
    let existed = conn.execute("DELETE FROM lease WHERE id = ?1", [id]).map_err(db_err)? > 0;
    let keys = {
        let mut stmt = conn.prepare_cached(KEYS_OF_LEASE).map_err(db_err)?;
        let rows = stmt.query_map([id], |r| r.get::<_, Vec<u8>>(0)).map_err(db_err)?;
        rows.map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?
    };
    delete_keys(conn, revision, before, keys, changes)?;
    Ok(existed)
}

fn revoke(conn: &Connection, revision: &mut Revision, id: LeaseId, changes: &mut Vec<Event>) -> Result<(), StoreError> {
    if end_lease(conn, revision, id, changes)? {
        Ok(())
    } else {
        Err(StoreError::LeaseNotFound(id))
    }
}

/// Ends every expired lease, each in its own revision.
fn sweep(conn: &Connection, revision: &mut Revision, committed: &mut Vec<Committed>) -> Result<(), StoreError> {
    let expired: Vec<LeaseId> = {
        let mut stmt = conn.prepare_cached("SELECT id FROM lease WHERE expires_ms <= ?1").map_err(db_err)?;
        let rows = stmt.query_map([now_ms()], |r| r.get(0)).map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?
    };
    for id in expired {
        let mut changes = Vec::new();
        end_lease(conn, revision, id, &mut changes)?;
        if !changes.is_empty() {
            committed.push(Committed { revision: *revision, events: changes });
        }
    }
    Ok(())
}

/// Discards the log before `target`, keeping the rows of live keys' latest versions (the current state stays
/// derivable from the log).
fn compact(conn: &Connection, current: Revision, target: Revision) -> Result<(), StoreError> {
    if target > current {
        return Err(StoreError::Other(format!("cannot compact at {target}: the current revision is {current}")));
    }
    if target <= schema::meta(conn, "compacted")? {
        return Ok(());
    }
    conn.execute(
        "DELETE FROM log WHERE rev < ?1 AND NOT EXISTS (SELECT 1 FROM kv WHERE kv.key = log.key AND kv.mod_rev = log.rev)",
        [target],
    )
    .map_err(db_err)?;
    schema::set_meta(conn, "compacted", target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_of_a_lease_are_found_through_its_index_not_by_scanning_every_key() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::create(&conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {KEYS_OF_LEASE}"))
            .unwrap()
            .query_map([7], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("kv_by_lease")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.starts_with("SCAN kv")), "{plan:?}");
    }
}
