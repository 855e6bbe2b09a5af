//! `fosctl` reads only regular files under the size limit: a device, a FIFO (which would block) and a file over
//! 16 MiB are refused with the reason, before anything is read.

use std::time::{Duration, Instant};

use fos_apply::load::read_manifest;
use fos_apply::LoadError;

#[test]
fn devices_fifos_and_big_files_are_refused() {
    let err = read_manifest(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(matches!(err, LoadError::NotAFile(_)), "{err}");
    assert!(err.to_string().contains("not a regular file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let started = Instant::now();
    let err = read_manifest(&fifo).unwrap_err();
    assert!(matches!(err, LoadError::NotAFile(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused without waiting for a writer");

    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(fos_api::limits::MAX_MANIFEST_BYTES + 1).unwrap();
    let err = read_manifest(&big).unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { .. }), "{err}");

    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "apiVersion: fos/v1\n").unwrap();
    assert_eq!(read_manifest(&ok).unwrap(), "apiVersion: fos/v1\n");
}
