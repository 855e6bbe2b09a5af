//! Benchmark figures in one format: each benchmark appends one JSON line per figure (name, value, unit, goal, the
//! same-run reference) to the file named by `FOS_BENCH_RESULTS`, from which `scripts/bench-table.py` prints the
//! table `make bench` ends with and writes the run's JSON for comparison with other runs.

use std::io::Write as _;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure<'a> {
    /// What was measured.
    pub figure: &'a str,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `s`, `MiB`, `/s`, `ops`).
    pub unit: &'a str,
    /// The goal, in words (`≤ 5 s`), empty when none.
    pub goal: &'a str,
    /// The reference measured in the same run, in words, empty when none.
    pub reference: String,
}

/// Appends `figure` to the results file when `FOS_BENCH_RESULTS` names one; a file that cannot be written is
/// reported on standard error and skipped (the figure was printed anyway).
pub fn record(figure: Figure<'_>) {
    let Some(path) = std::env::var_os("FOS_BENCH_RESULTS") else { return };
    let line = serde_json::json!({
        "figure": figure.figure,
        "value": figure.value,
        "unit": figure.unit,
        "goal": figure.goal,
        "reference": figure.reference,
    });
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("cannot append to {}: {e}", std::path::Path::new(&path).display());
    }
}
