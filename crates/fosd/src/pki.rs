//! The cluster's certificates: a CA made on the first node (rcgen, ECDSA P-256, valid until 2099), a serving certificate
//! for each node signed by it at every start (valid a year) (the node's names and addresses as subject alternative names), and
//! the rustls configurations that serve the API with it and trust the CA when calling other nodes.

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA: its certificate and key, PEM.
pub struct Ca {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "fos cluster CA");
    dn.push(DnType::OrganizationName, "fos");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // Fixed dates, so that the parameters rebuilt to sign node certificates are the CA's own.
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    Ok(params)
}

/// A new cluster CA.
pub fn new_ca() -> anyhow::Result<Ca> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let cert = ca_params()?.self_signed(&key).context("signing the CA certificate")?;
    Ok(Ca { cert: cert.pem(), key: key.serialize_pem() })
}

/// A serving certificate and its key (PEM) for `names` (host names and addresses), signed by `ca`.
pub fn server_cert(ca: &Ca, names: &[String]) -> anyhow::Result<(String, String)> {
    let ca_key = KeyPair::from_pem(&ca.key).context("reading the CA key")?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let key = KeyPair::generate().context("generating the serving key")?;
    let mut params = CertificateParams::new(names.to_vec()).context("the certificate's names")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().cloned().unwrap_or_else(|| "fosd".into()));
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.signed_by(&key, &issuer).context("signing the serving certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text.
pub fn certs(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.context("reading PEM certificates")?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the PEM text");
    Ok(certs)
}

/// The TLS configuration serving the API with `cert_pem` (chain) and `key_pem`.
pub fn server_config(cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("reading the serving key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs(cert_pem)?, key)
        .context("the serving certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS client configuration trusting only `ca_pem`.
pub fn client_config(ca_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).context("adding the CA certificate")?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_chains_to_the_ca() {
        let ca = new_ca().unwrap();
        let (cert, key) = server_cert(&ca, &["node-a".into(), "127.0.0.1".into()]).unwrap();
        server_config(&cert, &key).unwrap();
        client_config(&ca.cert).unwrap();
        // Verified end to end (HTTPS with this CA) by the end-to-end tests; here: both configurations build, and a
        // key that is not the certificate's is refused.
        let (_, other_key) = server_cert(&ca, &["node-b".into()]).unwrap();
        assert!(server_config(&cert, &other_key).is_err());
    }
}
