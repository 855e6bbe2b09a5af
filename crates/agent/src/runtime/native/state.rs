//! The per-instance state file of the native runtime (`<data>/native/<instance>/state.json`): the desired record
//! it was driven with, its lifecycle state, and its process's pid + start time, written atomically after every
//! step so that an agent restarted after a crash finds and adopts what it started.

use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use fos_api::lifecycle::State;
use fos_api::record::DesiredInstance;
use serde::{Deserialize, Serialize};

/// What the native runtime remembers of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateFile {
    /// The desired record of the last step.
    pub desired: DesiredInstance,
    /// The lifecycle state reached.
    pub state: State,
    /// The main process, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRecord>,
}

/// A process the runtime started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRecord {
    /// Process id (also its process group id: it leads its own session).
    pub pid: u32,
    /// Start time in clock ticks since boot, from `/proc/<pid>/stat`.
    pub start_time: u64,
    /// When it started, wall clock.
    pub started_at: DateTime<Utc>,
}

/// Reads a state file.
pub fn load(path: &Path) -> io::Result<StateFile> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes a state file atomically (temporary file + rename).
pub fn save(path: &Path, state: &StateFile) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}
