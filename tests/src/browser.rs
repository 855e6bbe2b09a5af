//! Headless Chromium driven over the DevTools protocol through `--remote-debugging-pipe` (file descriptors 3 and 4,
//! JSON messages ended by NUL), so it works inside a test's network namespace without another port: open a page,
//! evaluate JavaScript in it, take a screenshot.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

/// A headless Chromium with one page open.
pub struct Browser {
    child: Child,
    to: File,
    from: Receiver<Value>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// The Chromium binary, when installed (`chromium`, Debian's package).
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists())
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for the call.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    (fds[0], fds[1])
}

impl Browser {
    /// Starts Chromium (inside the network namespace `netns` when given) with a `width`×`height` window and opens
    /// `url`. Certificates are not checked: the test's fosd serves its own CA's certificate.
    pub fn open(netns: Option<&Path>, url: &str, width: u32, height: u32) -> Browser {
        let bin = chromium().expect("chromium is installed (make deps)");
        let profile = tempfile::tempdir().expect("a profile directory");
        let (to_read, to_write) = pipe();
        let (from_read, from_write) = pipe();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("--").arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe"])
            .args(["--ignore-certificate-errors", "--no-first-run", "--hide-scrollbars"])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The ends are first copied above
        // 10, so that neither is overwritten by the other's dup2 and both lose close-on-exec at 3 and 4 (a pipe end
        // that already is 3 or 4 would keep it through a dup2 onto itself).
        unsafe {
            cmd.pre_exec(move || {
                let (a, b) = (libc::fcntl(to_read, libc::F_DUPFD, 10), libc::fcntl(from_write, libc::F_DUPFD, 10));
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        // SAFETY: the descriptors are ours: the child's ends are closed here, ours wrapped once.
        let (to, from) = unsafe {
            libc::close(to_read);
            libc::close(from_write);
            (File::from_raw_fd(to_write), File::from_raw_fd(from_read))
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut from = from;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = from.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser { child, to, from: rx, next: 0, session: String::new(), _profile: profile };
        let target = b.call("Target.createTarget", json!({"url": url}), false);
        let target_id = target["targetId"].as_str().expect("a target id").to_string();
        let attached = b.call("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}), false);
        b.session = attached["sessionId"].as_str().expect("a session id").to_string();
        b
    }

    /// Sends a command (to the page's session when `paged`) and answers its result.
    fn call(&mut self, method: &str, params: Value, paged: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if paged {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("JSON");
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        loop {
            let v = self.from.recv_timeout(Duration::from_secs(60)).expect("chromium answers");
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value (JSON-serialisable).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}), true);
        r["result"]["value"].clone()
    }

    /// A PNG of the page as it is.
    pub fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}), true);
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap_or("")).expect("base64 PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
