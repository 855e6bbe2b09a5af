//! The etcd backend against an etcd that requires TLS with client certificates (certificates made with the
//! system's `openssl` in a temp dir), and against one with user/password authentication enabled.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fos_store::testing::{EtcdServer, ServerTls};
use fos_store::{EtcdAuth, EtcdConfig, EtcdStore, EtcdTls, Store, StoreError};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fos-test-ca"],
        ]
        .concat(),
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        openssl(
            dir,
            &[
                &["req"],
                &ec[..],
                &["-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &format!("/CN={name}")],
            ]
            .concat(),
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let p = |f: &str| certs.path().join(f);
    let client =
        EtcdTls { ca: Some(p("ca.pem")), cert: Some(p("client.pem")), key: Some(p("client.key")), domain: None };
    let server = EtcdServer::start_tls(
        ServerTls { cert: p("server.pem"), key: p("server.key"), ca: p("ca.pem") },
        client.clone(),
    )
    .await
    .expect("start etcd with TLS");
    let store = server.store().await.expect("connect over TLS");
    let rev = store.put("/secure", b"yes".to_vec(), None).await.unwrap();
    assert_eq!(store.get("/secure").await.unwrap().unwrap().mod_revision, rev);

    // Without a client certificate the server refuses.
    let mut no_cert = EtcdConfig::new(server.endpoints());
    no_cert.tls = Some(EtcdTls { ca: Some(p("ca.pem")), ..EtcdTls::default() });
    no_cert.retry_for = Duration::from_secs(2);
    assert!(EtcdStore::connect(no_cert).await.is_err(), "a client without certificate must be refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    let server = EtcdServer::start().await.unwrap();
    let mut admin = etcd_client::Client::connect(server.endpoints(), None).await.unwrap();
    admin.user_add("root", "s3cret", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut config = EtcdConfig::new(server.endpoints());
    config.auth = Some(EtcdAuth { user: "root".into(), password: "s3cret".into() });
    let store = EtcdStore::connect(config).await.expect("connect with user/password");
    store.put("/authed", b"1".to_vec(), None).await.unwrap();
    assert_eq!(store.get("/authed").await.unwrap().unwrap().value, b"1");

    let mut anonymous = EtcdConfig::new(server.endpoints());
    anonymous.retry_for = Duration::from_secs(2);
    let refused = match EtcdStore::connect(anonymous).await {
        Err(_) => true,
        Ok(s) => matches!(s.get("/authed").await, Err(StoreError::Other(_) | StoreError::Unavailable(_))),
    };
    assert!(refused, "an anonymous client must be refused");
}
