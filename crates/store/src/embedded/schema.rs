//! The embedded store's SQLite schema, connection settings and the read queries shared by the writer and the
//! readers: a kine-style revision log (`log`), the current state derived from it (`kv`), leases and metadata.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::Durability;
use crate::{Event, EventKind, KeyValue, Revision, StoreError};

/// The tables. `log` holds every change (one row per key changed, `rev` the store revision of the change, `sub` its
/// position within that revision); `kv` is the latest live version of each key, the same as replaying `log`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER NOT NULL, sub INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
    create_rev INTEGER NOT NULL, lease INTEGER NOT NULL, deleted INTEGER NOT NULL,
    PRIMARY KEY (rev, sub)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
    lease INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0), ('lease_seq', 0);
";

/// The revision of an empty store (as in etcd, the first change gets revision 2).
pub const INITIAL_REVISION: Revision = 1;

/// Maps a SQLite error to the store's error.
pub fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Page cache size of each connection, in KiB.
const CACHE_KIB: u32 = 64 * 1024;

/// Opens a connection to the store file with the settings every connection shares.
pub fn connect(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(db_err)?;
    let sync = match durability {
        Durability::Process => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    // A page cache of 64 MiB per connection (SQLite's default is 2 MiB): with thousands of instances the revision
    // log's pages are otherwise read again from the file on every write.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -{CACHE_KIB};"
    ))
    .map_err(db_err)?;
    Ok(conn)
}

/// Creates the tables if they do not exist yet.
pub fn create(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA).map_err(db_err)
}

/// The end of the key range of `prefix` (exclusive), as etcd computes it: the prefix with its last byte below 0xff
/// incremented; `None` when every key at or after the prefix matches.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key range `[start, end)` of `prefix` as SQL parameters (`end` = a byte string above every key when open).
pub fn range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = prefix.as_bytes().to_vec();
    let end = prefix_end(&start).unwrap_or_else(|| vec![0xff; 8]);
    (start, end)
}

/// The current store revision.
pub fn current_revision(conn: &Connection) -> Result<Revision, StoreError> {
    let rev: Option<Revision> = conn.query_row("SELECT max(rev) FROM log", [], |r| r.get(0)).map_err(db_err)?;
    Ok(rev.unwrap_or(INITIAL_REVISION).max(INITIAL_REVISION))
}

/// A metadata counter.
pub fn meta(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0)).map_err(db_err)
}

/// Sets a metadata counter.
pub fn set_meta(conn: &Connection, name: &str, value: i64) -> Result<(), StoreError> {
    conn.execute("UPDATE meta SET value = ?2 WHERE name = ?1", params![name, value]).map_err(db_err)?;
    Ok(())
}

fn key_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The live version of `key`.
pub fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>, StoreError> {
    conn.prepare_cached("SELECT value, create_rev, mod_rev, lease FROM kv WHERE key = ?1")
        .map_err(db_err)?
        .query_row([key.as_bytes()], |r| {
            Ok(KeyValue {
                key: key.to_string(),
                value: r.get(0)?,
                create_revision: r.get(1)?,
                mod_revision: r.get(2)?,
                lease: r.get(3)?,
            })
        })
        .optional()
        .map_err(db_err)
}

/// Every live key under `prefix`, in key order.
pub fn list(conn: &Connection, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
    let (start, end) = range(prefix);
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![start, end], |r| {
            Ok(KeyValue {
                key: key_string(r.get(0)?),
                value: r.get(1)?,
                create_revision: r.get(2)?,
                mod_revision: r.get(3)?,
                lease: r.get(4)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}

/// The logged changes under `prefix` with revisions in `[from, to]`, in revision order, as watch events.
pub fn changes(conn: &Connection, prefix: &str, from: Revision, to: Revision) -> Result<Vec<Event>, StoreError> {
    let (start, end) = range(prefix);
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, value, create_rev, rev, lease, deleted FROM log
             WHERE rev >= ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev, sub",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![from, to, start, end], |r| {
            let deleted: bool = r.get(5)?;
            Ok(Event {
                kind: if deleted { EventKind::Delete } else { EventKind::Put },
                kv: KeyValue {
                    key: key_string(r.get(0)?),
                    value: r.get(1)?,
                    create_revision: r.get(2)?,
                    mod_revision: r.get(3)?,
                    lease: r.get(4)?,
                },
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}
