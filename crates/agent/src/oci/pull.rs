//! Pulling an image from a registry with `oci-client`: the manifest (a manifest list resolved to this node's
//! platform), the configuration and every layer not held yet, each checked against its digest before it is kept.
//! Plain HTTP is used only for the registries the node lists as insecure. Credentials (from the entity's
//! `imagePullSecret`) are sent as HTTP Basic authentication; an image pulled with them is private on the node: another
//! tenant gets it from the store only after the registry accepted that tenant's own credentials for it.

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    OciDescriptor, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use super::auth::Credentials;
use super::blobs::{BlobWriter, Digest};
use super::{now_secs, parse_config, this_architecture, Image, ImageStore, Layer, OciError};

const MANIFEST_TYPES: [&str; 4] =
    [OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE];

/// How to reach registries, and for whom.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`host:port`) reached over plain HTTP; every other one over HTTPS.
    pub insecure: Vec<String>,
    /// User name and password for the registry, when it asks for them.
    pub credentials: Option<Credentials>,
    /// The tenant the image is for (a private image held for others is checked against the registry for it).
    pub tenant: Option<String>,
}

impl PullOptions {
    fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn client(&self, registry: &str) -> Result<Client, OciError> {
        ensure_tls_provider();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.insecure.clone()),
            platform_resolver: None,
            ..Default::default()
        };
        Client::try_from(config).map_err(|source| OciError::Registry { registry: registry.to_string(), source })
    }

    /// The error for `source` from `registry`: a refusal of the credentials (or of their absence) says so.
    fn registry_error(&self, registry: &str, image: &str, source: OciDistributionError) -> OciError {
        let refused = match &source {
            OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => true,
            OciDistributionError::ServerError { code, .. } => matches!(code, 401 | 403),
            OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::Unauthorized | oci_client::errors::OciErrorCode::Denied
                )
            }),
            _ => false,
        };
        if refused {
            OciError::Unauthorized {
                registry: registry.to_string(),
                image: image.to_string(),
                secret: self.credentials.as_ref().map(|c| c.secret.clone()),
            }
        } else {
            OciError::Registry { registry: registry.to_string(), source }
        }
    }
}

/// Whether `image` names a registry image (`host[:port]/name[:tag|@digest]`) rather than an archive on the node.
pub fn is_registry_reference(image: &str) -> bool {
    !image.starts_with('/') && image.contains('/')
}

/// Parses a registry reference.
pub fn parse_reference(image: &str) -> Result<Reference, OciError> {
    image.parse::<Reference>().map_err(|e| OciError::Reference { reference: image.to_string(), reason: e.to_string() })
}

/// Installs ring as the process's TLS provider when none is (reqwest, under oci-client, needs one).
fn ensure_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The image `image` as held by the node: from the store when every part is there (no registry contacted), else
/// pulled.
pub async fn ensure(store: &ImageStore, image: &str, options: &PullOptions) -> Result<Image, OciError> {
    if let Some(mut held) = store.get(image) {
        let known = |t: &String| held.tenants.contains(t);
        if !held.private || options.tenant.as_ref().is_some_and(known) {
            return Ok(held);
        }
        // A private image held for another tenant: the registry decides whether this one may have it.
        check_access(image, options).await?;
        if let Some(tenant) = &options.tenant {
            held.tenants.insert(tenant.clone());
            store.put(&held)?;
        }
        return Ok(held);
    }
    pull(store, image, options).await
}

/// Asks the registry for `image`'s manifest with `options`' credentials (or none): whether it lets them have it.
pub async fn check_access(image: &str, options: &PullOptions) -> Result<(), OciError> {
    let reference = parse_reference(image)?;
    let registry = reference.resolve_registry().to_string();
    let client = options.client(&registry)?;
    client
        .pull_manifest_raw(&reference, &options.auth(), &MANIFEST_TYPES)
        .await
        .map(|_| ())
        .map_err(|e| options.registry_error(&registry, image, e))
}

/// Pulls `image` from its registry into `store` and records it. A blob already held is not fetched again.
pub async fn pull(store: &ImageStore, image: &str, options: &PullOptions) -> Result<Image, OciError> {
    let reference = parse_reference(image)?;
    let registry = reference.resolve_registry().to_string();
    let client = options.client(&registry)?;
    let auth = options.auth();
    let registry_error = |source| options.registry_error(&registry, image, source);

    let (bytes, _) = client.pull_manifest_raw(&reference, &auth, &MANIFEST_TYPES).await.map_err(registry_error)?;
    let top = Digest::of(&bytes);
    if let Some(asked) = reference.digest() {
        let asked = Digest::parse(asked).map_err(|reason| OciError::Reference { reference: image.into(), reason })?;
        if asked != top {
            return Err(mismatch("manifest", image, &asked, &top));
        }
    }
    let mut manifest: Value = serde_json::from_slice(&bytes).map_err(|e| OciError::invalid(image, e.to_string()))?;
    let mut manifest_digest = top;
    if manifest.get("manifests").is_some() {
        let chosen = choose_platform(image, &manifest)?;
        let by_digest = reference.clone_with_digest(chosen.to_string());
        let (bytes, _) = client.pull_manifest_raw(&by_digest, &auth, &MANIFEST_TYPES).await.map_err(registry_error)?;
        let got = Digest::of(&bytes);
        if got != chosen {
            return Err(mismatch("manifest", image, &chosen, &got));
        }
        manifest = serde_json::from_slice(&bytes).map_err(|e| OciError::invalid(image, e.to_string()))?;
        manifest_digest = chosen;
    }
    let (config_desc, layer_descs) = descriptors(image, &manifest)?;

    // The configuration, checked and kept like a layer.
    let config_digest = digest_of(image, &config_desc.digest)?;
    if !store.blob_path(&config_digest).exists() {
        fetch(store, &client, &reference, &config_desc, &config_digest, "configuration", image, &registry).await?;
    }
    let path = store.blob_path(&config_digest);
    let config_bytes = std::fs::read(&path).map_err(|e| OciError::io(&path, e))?;
    let config_file = parse_config(image, &config_bytes)?;

    let mut layers = Vec::new();
    for desc in &layer_descs {
        let digest = digest_of(image, &desc.digest)?;
        super::unpack::check_media_type(image, &desc.media_type)?;
        if !store.blob_path(&digest).exists() {
            fetch(store, &client, &reference, desc, &digest, "layer", image, &registry).await?;
        }
        layers.push(Layer { digest, media_type: desc.media_type.clone() });
    }
    let record = Image {
        reference: image.to_string(),
        manifest: manifest_digest,
        config_digest,
        config: config_file.config.unwrap_or_default(),
        layers,
        last_used: now_secs(),
        private: options.credentials.is_some(),
        tenants: options.tenant.iter().cloned().collect(),
    };
    store.put(&record)?;
    Ok(record)
}

/// Fetches one blob into the store, checked against `digest`.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    store: &ImageStore,
    client: &Client,
    reference: &Reference,
    desc: &OciDescriptor,
    digest: &Digest,
    what: &str,
    image: &str,
    registry: &str,
) -> Result<(), OciError> {
    let mut stream = client
        .pull_blob_stream(reference, desc)
        .await
        .map_err(|source| OciError::Registry { registry: registry.to_string(), source })?;
    let mut writer = BlobWriter::new(store)?;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if let Err(e) = writer.write(&bytes) {
                    writer.abandon();
                    return Err(e);
                }
            }
            // oci-client's own check fails at the end of a blob whose content is not its digest: the whole content
            // has arrived and the commit below says what it hashes to. A transfer cut short is retried.
            Err(e) if writer.written() as i64 >= desc.size => {
                tracing::debug!(blob = %digest, error = %e, "blob check by oci-client failed");
                break;
            }
            Err(e) => {
                writer.abandon();
                return Err(OciError::io(format!("{registry}: {what} {digest}"), e));
            }
        }
    }
    writer.commit(store, digest, what, image).map(|_| ())
}

fn mismatch(what: &str, image: &str, expected: &Digest, actual: &Digest) -> OciError {
    OciError::DigestMismatch {
        what: what.to_string(),
        image: image.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

fn digest_of(image: &str, s: &str) -> Result<Digest, OciError> {
    Digest::parse(s).map_err(|reason| OciError::invalid(image, reason))
}

/// The configuration and layer descriptors of an image manifest.
pub(crate) fn descriptors(image: &str, manifest: &Value) -> Result<(OciDescriptor, Vec<OciDescriptor>), OciError> {
    let config = manifest
        .get("config")
        .cloned()
        .ok_or_else(|| OciError::invalid(image, "the manifest has no `config`"))
        .and_then(|v| {
            serde_json::from_value::<OciDescriptor>(v).map_err(|e| OciError::invalid(image, e.to_string()))
        })?;
    let layers = manifest
        .get("layers")
        .cloned()
        .ok_or_else(|| OciError::invalid(image, "the manifest has no `layers`"))
        .and_then(|v| {
            serde_json::from_value::<Vec<OciDescriptor>>(v).map_err(|e| OciError::invalid(image, e.to_string()))
        })?;
    Ok((config, layers))
}

/// The digest of the manifest for `linux/<this architecture>` in a manifest list.
pub(crate) fn choose_platform(image: &str, index: &Value) -> Result<Digest, OciError> {
    let arch = this_architecture();
    let entries = index.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut seen = Vec::new();
    for entry in &entries {
        let platform = entry.get("platform");
        let os = platform.and_then(|p| p.get("os")).and_then(Value::as_str).unwrap_or("");
        let a = platform.and_then(|p| p.get("architecture")).and_then(Value::as_str).unwrap_or("");
        seen.push(format!("{os}/{a}"));
        if os == "linux" && a == arch {
            let digest = entry.get("digest").and_then(Value::as_str).unwrap_or("");
            return digest_of(image, digest);
        }
    }
    Err(OciError::invalid(image, format!("no linux/{arch} image in its manifest list (it has {})", seen.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_list_entry_of_this_platform_is_chosen() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = serde_json::json!({"manifests": [
            {"digest": d('a'), "platform": {"os": "linux", "architecture": "s390x"}},
            {"digest": d('b'), "platform": {"os": "linux", "architecture": this_architecture()}},
        ]});
        assert_eq!(choose_platform("img", &index).unwrap().as_str(), d('b'));
        let other = serde_json::json!({"manifests": [{"digest": d('a'), "platform": {"os": "linux", "architecture": "s390x"}}]});
        let err = choose_platform("img", &other).unwrap_err().to_string();
        assert!(err.contains("no linux/") && err.contains("linux/s390x"), "{err}");
    }

    #[test]
    fn references_and_archives_are_told_apart() {
        assert!(is_registry_reference("127.0.0.1:5000/web:1"));
        assert!(!is_registry_reference("/var/lib/images/web.tar"));
        assert!(!is_registry_reference("web"));
    }
}
