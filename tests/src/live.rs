//! Live migration of a process by hand and what the live migration tests and benchmark read: the counter that keeps
//! its count and a random token in memory, the lines it writes, the `criu` binary, and the same process dumped and
//! restored by hand with `criu` (the options fos uses), for the downtime reference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The counter's shell script: the count and token in memory, the file opened once.
pub const SCRIPT: &str = r#"t=$(od -An -N4 -tx4 /dev/urandom | tr -d ' '); n=0; exec 3>>"$COUNTER"; while :; do n=$((n+1)); echo "$n $(date +%s%N) $t" >&3; sleep 0.05; done"#;

/// The `criu` binary: on `PATH`, else where `make deps` installs it.
pub fn criu() -> PathBuf {
    let on_path =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("criu")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| PathBuf::from("/usr/local/sbin/criu"))
}

/// Why live migration cannot be tested here, if it cannot.
pub fn criu_missing() -> Option<String> {
    match Command::new(criu()).arg("check").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Some(format!("{}: {e}", criu().display())),
    }
}

/// Whether this process has CAP_SYS_RESOURCE (without it CRIU cannot checkpoint another user's process).
pub fn has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
    eff.and_then(|hex| u64::from_str_radix(hex, 16).ok()).is_some_and(|caps| caps & (1 << 24) != 0)
}

/// The lines of a counter file: (value, nanos, token).
pub fn lines(path: &Path) -> Vec<(u64, u128, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, f.get(2)?.to_string()))
        })
        .collect()
}

/// Waits until `path` has `n` lines.
pub fn until_lines(path: &Path, n: usize, what: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(path).len() < n {
        assert!(Instant::now() < deadline, "{} never reached {n} lines\n{}", path.display(), what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Values consecutive from 1 under one token; the longest gap between two lines (ms).
pub fn check_one_process(all: &[(u64, u128, String)]) -> u128 {
    assert_eq!(all.first().map(|l| l.0), Some(1), "{all:?}");
    let mut longest = 0;
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "a value skipped or written twice: {:?} then {:?}", w[0], w[1]);
        assert_eq!(w[1].2, w[0].2, "another process wrote {:?} after {:?}: started afresh, not restored", w[1], w[0]);
        longest = longest.max((w[1].1 - w[0].1) / 1_000_000);
    }
    longest
}

/// The same process dumped and restored by hand with `criu` (the options fos uses): (downtime ms from the dump's
/// start to the restored process running, dump ms, restore ms, longest gap in its file ms).
pub fn by_hand(dir: &Path) -> (u128, u128, u128, u128) {
    let file = dir.join("counter");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("the images directory");
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &SCRIPT.replace("$COUNTER", &file.display().to_string())]).current_dir(dir);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        // As fos starts a native entity: leading its own session, with only its standard streams. This process inherits (and reaps) what the
        // dump leaves, whatever the machine's init does.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC);
                Ok(())
            });
        }
        cmd.spawn().expect("sh")
    };
    until_lines(&file, 20, &|| "the hand-made counter does not count".into());
    let common = ["--shell-job", "--tcp-established", "--file-locks", "--ext-unix-sk"];
    let t = Instant::now();
    let dump = Command::new(criu())
        .args(["dump", "--tree", &child.id().to_string(), "--images-dir"])
        .arg(&images)
        .args(["--log-file", "dump.log", "--manage-cgroups"])
        .args(common)
        .output()
        .expect("criu dump");
    let dump_ms = t.elapsed().as_millis();
    assert!(dump.status.success(), "criu dump by hand: {}", std::fs::read_to_string(images.join("dump.log")).unwrap());
    let _ = child.wait();
    // Its other processes are gone too (reaped here, this process inherited them): their pids must be free.
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(-pgid, 0) } == 0 {
        unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) };
        assert!(Instant::now() < deadline, "the hand-dumped processes do not go");
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = Instant::now();
    let restore = Command::new(criu())
        .args(["restore", "--images-dir"])
        .arg(&images)
        .args(["--log-file", "restore.log", "--restore-detached", "--manage-cgroups=ignore", "--pidfile"])
        .arg(images.join("pid"))
        .args(common)
        .output()
        .expect("criu restore");
    let restore_ms = r.elapsed().as_millis();
    let downtime = t.elapsed().as_millis();
    assert!(restore.status.success(), "criu restore: {}", std::fs::read_to_string(images.join("restore.log")).unwrap());
    let pid: i32 = std::fs::read_to_string(images.join("pid")).unwrap().trim().parse().unwrap();
    let before = lines(&file).len();
    until_lines(&file, before + 10, &|| "the hand-restored counter does not count".into());
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    // The restored tree was inherited here: reap it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(-pid, 0) } == 0 && Instant::now() < deadline {
        unsafe { libc::waitpid(-pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(1));
    }
    let gap = check_one_process(&lines(&file));
    (downtime, dump_ms, restore_ms, gap)
}
