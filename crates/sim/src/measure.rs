//! What the simulation measures of its own process: CPU time of the threads whose name starts with a prefix (the
//! controller runs on its own named threads), resident memory now and at its peak, and percentiles.

use std::time::Duration;

/// CPU time (user + system) of this process's threads whose name starts with `prefix`, from
/// `/proc/self/task/*/stat`.
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    let ticks: u64 = tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix)))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| stat_cpu_ticks(&stat))
        .sum();
    ticks_to_duration(ticks)
}

/// CPU time of the whole process (every thread, those that ended included).
pub fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat").map(|s| ticks_to_duration(stat_cpu_ticks(&s))).unwrap_or_default()
}

/// utime + stime of a `stat` line (fields 14 and 15, counted after the parenthesised command name).
fn stat_cpu_ticks(stat: &str) -> u64 {
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    field(11) + field(12)
}

/// Clock ticks per second of `/proc` CPU figures (`getconf CLK_TCK`: 100 on every Linux platform fos runs on).
const CLK_TCK: f64 = 100.0;

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / CLK_TCK)
}

/// A `/proc/self/status` memory figure in MiB (`VmRSS`, `VmHWM`).
pub fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

/// The `p`-th percentile (0–100) of `sorted` (ascending), by nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
    }

    #[test]
    fn cpu_fields_are_read_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 5 1000 10";
        assert_eq!(stat_cpu_ticks(stat), 280);
    }

    #[test]
    fn a_busy_named_thread_is_counted() {
        let before = (process_cpu(), threads_cpu("busy-measure"));
        let busy = std::thread::Builder::new()
            .name("busy-measure".into())
            .spawn(|| {
                // Spin until this thread has used 100 ms of CPU (however loaded the machine is), then report.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while threads_cpu("busy-measure") < Duration::from_millis(100) && std::time::Instant::now() < deadline {
                }
                threads_cpu("busy-measure")
            })
            .expect("a thread");
        let used = busy.join().expect("the busy thread");
        assert!(used >= Duration::from_millis(100), "the named thread's CPU: {used:?}");
        assert_eq!(before.1, Duration::ZERO, "no such thread before");
        assert!(process_cpu() >= before.0 + Duration::from_millis(100), "the process's CPU counts it");
    }
}
