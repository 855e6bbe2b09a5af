//! The VM runtime's per-instance state file (`<data>/vm/<instance>/state.json`): the desired record the instance
//! was last driven with and the lifecycle state it reached, written atomically after every step, so that a
//! restarted agent knows which domains are its own and in what state it left them.

use std::fs;
use std::path::Path;

use fos_api::lifecycle::State;
use fos_api::record::DesiredInstance;
use serde::{Deserialize, Serialize};

use crate::runtime::RuntimeError;

/// The state file's name in the instance's directory.
pub const STATE_FILE: &str = "state.json";

/// What the VM runtime remembers of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateFile {
    /// The desired record of the last step.
    pub desired: DesiredInstance,
    /// The lifecycle state reached.
    pub state: State,
}

/// Reads the state file of the instance directory `dir`.
pub fn load(dir: &Path) -> Result<StateFile, RuntimeError> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RuntimeError::io(&path, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Writes the state file of the instance directory `dir` atomically (temporary file + rename).
pub fn save(dir: &Path, state: &StateFile) -> Result<(), RuntimeError> {
    fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
    let path = dir.join(STATE_FILE);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state)
        .map_err(|e| RuntimeError::io(&path, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    fs::write(&tmp, bytes).map_err(|e| RuntimeError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| RuntimeError::io(&path, e))
}
