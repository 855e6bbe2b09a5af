//! Choosing and opening a backend: [`StoreConfig`] says which store to use (an embedded data directory or an etcd
//! cluster) and [`open`] returns it behind the one [`Store`] trait, so `fosd` picks by flags alone.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Durability, EmbeddedConfig, EmbeddedStore, EtcdAuth, EtcdConfig, EtcdStore, EtcdTls, Store, StoreError};

/// Which store to open.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded SQLite store in a data directory (one process owns it).
    Embedded {
        /// The data directory.
        dir: PathBuf,
        /// Revisions of history kept before background compaction.
        compaction_window: i64,
        /// What a returned write survives.
        durability: Durability,
    },
    /// An etcd cluster.
    Etcd {
        /// The members' client URLs.
        endpoints: Vec<String>,
        /// TLS, if used.
        tls: Option<EtcdTls>,
        /// User/password, if used.
        auth: Option<EtcdAuth>,
    },
}

impl StoreConfig {
    /// The embedded store in `dir` with the default settings.
    pub fn embedded(dir: impl Into<PathBuf>) -> StoreConfig {
        let defaults = EmbeddedConfig::new(dir);
        StoreConfig::Embedded {
            dir: defaults.dir,
            compaction_window: defaults.compaction_window,
            durability: defaults.durability,
        }
    }

    /// An etcd cluster at `endpoints`, without TLS or authentication.
    pub fn etcd(endpoints: impl IntoIterator<Item = impl Into<String>>) -> StoreConfig {
        StoreConfig::Etcd { endpoints: endpoints.into_iter().map(Into::into).collect(), tls: None, auth: None }
    }
}

/// Opens the store `config` names (inside a Tokio runtime).
pub async fn open(config: StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Embedded { dir, compaction_window, durability } => {
            let mut c = EmbeddedConfig::new(dir);
            c.compaction_window = compaction_window;
            c.durability = durability;
            Ok(Arc::new(EmbeddedStore::open(c)?))
        }
        StoreConfig::Etcd { endpoints, tls, auth } => {
            let mut c = EtcdConfig::new(endpoints);
            c.tls = tls;
            c.auth = auth;
            Ok(Arc::new(EtcdStore::connect(c).await?))
        }
    }
}
