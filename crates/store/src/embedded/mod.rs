//! The embedded backend: the whole store in one SQLite file in a data directory (WAL mode), owned by one process,
//! with a kine-style revision log so that watches resume from any retained revision, leases swept by a background
//! task, and history compacted in the background past a configurable window.

mod hub;
mod reserve;
mod schema;
mod watch;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use crate::{KeyValue, LeaseId, ListResult, Revision, Store, StoreError, Txn, TxnOp, TxnResult, WatchStream};
use writer::{Applied, Command, Writer};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "fos-store.db";
/// The lock file's name inside the data directory (held by the owning process).
pub const LOCK_FILE: &str = "fos-store.lock";

/// What a returned write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The write is in the operating system before the call returns (SQLite WAL, `synchronous = NORMAL`): it
    /// survives the process being killed (`kill -9`, crash), not a power loss or kernel crash.
    #[default]
    Process,
    /// Every commit is synced to disk (`synchronous = FULL`): it also survives a power loss; as fast as the disk
    /// syncs (concurrent writers share one sync per batch).
    PowerLoss,
}

/// How to open an embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// How many revisions of history to keep; older ones are compacted in the background.
    pub compaction_window: i64,
    /// How often background compaction runs.
    pub compaction_interval: Duration,
    /// How often expired leases are swept.
    pub lease_sweep_interval: Duration,
    /// What a returned write survives.
    pub durability: Durability,
    /// Bytes kept in a reserve file beside the database and given back when the disk is full, so deletes and
    /// lease renewals still commit (0: no reserve).
    pub reserve_bytes: u64,
}

impl EmbeddedConfig {
    /// The defaults for a data directory: 10,000 revisions of history, compaction every 5 min, lease sweep every
    /// 250 ms, writes that survive the process being killed, 8 MiB reserved for a full disk.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            dir: dir.into(),
            compaction_window: 10_000,
            compaction_interval: Duration::from_secs(300),
            lease_sweep_interval: Duration::from_millis(250),
            durability: Durability::Process,
            reserve_bytes: reserve::DEFAULT_BYTES,
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc`; background tasks stop when it is dropped.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    durability: Durability,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// Reads running at once, at most (each on a pooled connection): more than the cores only adds connections,
    /// each with its own page cache, and contention.
    reading: tokio::sync::Semaphore,
    hub: Arc<hub::Hub>,
}

/// Reads at once: twice the cores, at least four.
fn concurrent_reads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
}

/// How many committed revisions a watcher may fall behind before it catches up from the log.
const EVENT_BUFFER: usize = 4096;

impl EmbeddedStore {
    /// Opens (or creates) the store in `config.dir`, taking ownership of it: fails with [`StoreError::Locked`] when
    /// another process (or another open store) holds it. Must be called inside a Tokio runtime (background tasks).
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedStore, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Other("the embedded store must be opened inside a Tokio runtime".into()))?;
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| StoreError::Database(format!("creating {}: {e}", config.dir.display())))?;
        let lock = lock_dir(&config.dir)?;
        let path = config.dir.join(DB_FILE);
        let conn = schema::connect(&path, config.durability)?;
        schema::create(&conn)?;
        // Checkpoints (which sync the file) run in the background, never on a write's path.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(schema::db_err)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let reserve = reserve::Reserve::new(config.dir.join(reserve::FILE), config.reserve_bytes);
        let mut writer = Writer::new(conn, events.clone(), reserve)?;
        writer.renew_all_leases()?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("fos-store-writer".into())
            .spawn(move || {
                writer.run(rx);
                drop(lock);
            })
            .map_err(|e| StoreError::Database(format!("starting the writer: {e}")))?;
        let hub = Arc::new(hub::Hub::default());
        let published = events.subscribe();
        let dispatcher = hub.clone();
        std::thread::Builder::new()
            .name("fos-store-watch".into())
            .spawn(move || dispatcher.run(published))
            .map_err(|e| StoreError::Database(format!("starting the watch hub: {e}")))?;
        let inner = Arc::new(Inner {
            path,
            durability: config.durability,
            commands: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Mutex::new(Vec::new()),
            reading: tokio::sync::Semaphore::new(concurrent_reads()),
            hub,
        });
        spawn_ticker(&runtime, Arc::downgrade(&inner), config.lease_sweep_interval, || Command::SweepLeases);
        let window = config.compaction_window.max(1);
        spawn_ticker(&runtime, Arc::downgrade(&inner), config.compaction_interval, move || {
            Command::AutoCompact(window)
        });
        spawn_checkpointer(&runtime, Arc::downgrade(&inner));
        Ok(EmbeddedStore { inner })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let lock_path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(format!("opening {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Database(format!("locking {}: {e}", lock_path.display())))
        }
    }
}

/// Sends `command()` to the writer every `period` while the store lives.
fn spawn_ticker(
    runtime: &tokio::runtime::Handle,
    inner: Weak<Inner>,
    period: Duration,
    command: impl Fn() -> Command + Send + 'static,
) {
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            if inner.send(command()).is_err() {
                return;
            }
        }
    });
}

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoints the write-ahead log periodically (passive: never blocks the writer or readers) while the store lives.
fn spawn_checkpointer(runtime: &tokio::runtime::Handle, inner: Weak<Inner>) {
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_INTERVAL).await;
            let Some(inner) = inner.upgrade() else { return };
            let done = inner
                .read(|conn| conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(schema::db_err))
                .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, "embedded store checkpoint failed");
            }
        }
    });
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the command channel ends the writer; wait for it so the file and its lock are released on return.
        if let Ok(mut commands) = self.commands.lock() {
            commands.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Inner {
    fn send(&self, command: Command) -> Result<(), StoreError> {
        let guard = self.commands.lock().map_err(|_| closed())?;
        guard.as_ref().ok_or_else(closed)?.send(command).map_err(|_| closed())
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.clone();
        let _permit = self.reading.acquire().await.map_err(|e| StoreError::Database(format!("read: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut r| r.pop());
            let mut conn = match pooled {
                Some(c) => c,
                None => schema::connect(&inner.path, inner.durability)?,
            };
            let out = f(&mut conn);
            if let Ok(mut readers) = inner.readers.lock() {
                readers.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task: {e}")))?
    }

    async fn txn(&self, txn: Txn) -> Result<Applied, StoreError> {
        self.request(|reply| Command::Txn(txn, reply)).await
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the embedded store is closed".into())
}

/// Reads inside one read transaction (one consistent snapshot).
fn snapshot<T>(conn: &mut Connection, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    let tx = conn.transaction().map_err(schema::db_err)?;
    let out = f(&tx)?;
    tx.finish().map_err(schema::db_err)?;
    Ok(out)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.inner.read(move |conn| schema::get(conn, &key)).await
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_string();
        self.inner
            .read(move |conn| {
                snapshot(conn, |c| {
                    Ok(ListResult { revision: schema::current_revision(c)?, kvs: schema::list(c, &prefix)? })
                })
            })
            .await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError> {
        let op = TxnOp::Put { key: key.to_string(), value, lease: lease.filter(|l| *l != 0) };
        Ok(self.inner.txn(Txn { success: vec![op], ..Txn::default() }).await?.result.revision)
    }

    async fn delete(&self, key: &str) -> Result<(Revision, bool), StoreError> {
        let op = TxnOp::Delete { key: key.to_string() };
        let applied = self.inner.txn(Txn { success: vec![op], ..Txn::default() }).await?;
        Ok((applied.result.revision, applied.deleted > 0))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(Revision, u64), StoreError> {
        let op = TxnOp::DeletePrefix { prefix: prefix.to_string() };
        let applied = self.inner.txn(Txn { success: vec![op], ..Txn::default() }).await?;
        Ok((applied.result.revision, applied.deleted))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        Ok(self.inner.txn(txn).await?.result)
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        watch::start(&self.inner, prefix.to_string(), from).await
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.request(|reply| Command::Grant(ttl, reply)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.request(|reply| Command::KeepAlive(lease, reply)).await
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.request(|reply| Command::Revoke(lease, reply)).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.request(|reply| Command::Compact(revision, reply)).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.read(|conn| schema::current_revision(conn)).await
    }
}
