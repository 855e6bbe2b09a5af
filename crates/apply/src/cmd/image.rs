//! `fosctl image upload FILE --name NAME [--sha256 HEX] [--format F]` and `fosctl image delete NAME`. An upload
//! hashes the file first when no digest is given (so the server always checks the content against a digest made
//! from the file), then streams it to the API with a progress bar on a terminal; the server refuses content whose
//! sha256 differs and stores nothing then.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use fos_api::image::{is_sha256, ImageView};
use fos_api::manifest::ImageFormat;
use fos_api::wire::ObjectChange;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncReadExt;

use crate::client::{encode_query, Client};

/// Image commands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload a disk image, kernel, initrd or archive as an Image (administrators).
    Upload(UploadArgs),
    /// Delete an Image (refused while an application uses it).
    Delete {
        /// The image's name.
        name: String,
    },
}

/// `fosctl image upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The file to upload.
    pub file: PathBuf,
    /// The Image's name.
    #[arg(long)]
    pub name: String,
    /// The sha256 the content must have (64 hex digits; default: computed from the file before the upload).
    #[arg(long)]
    pub sha256: Option<String>,
    /// Its format: qcow2, raw, iso, tar.gz (default: from the file name, else raw).
    #[arg(long)]
    pub format: Option<ImageFormat>,
}

/// Runs an image command.
pub async fn image(client: &Client, command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Upload(args) => upload(client, args).await,
        ImageCommand::Delete { name } => {
            let change: ObjectChange = client.delete(&format!("/v1/images/{}", encode_query(&name))).await?;
            println!("image/{name} {}", change.change);
            Ok(())
        }
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style).with_message(what.to_string())
}

async fn sha256_of(path: &std::path::Path, len: u64) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let progress = bar(len, "hashing");
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        progress.inc(n as u64);
    }
    progress.finish_and_clear();
    Ok(hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

async fn upload(client: &Client, args: UploadArgs) -> anyhow::Result<()> {
    let file = &args.file;
    let meta = std::fs::metadata(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{}: not a regular file", file.display());
    }
    let sha256 = match args.sha256 {
        Some(hex) => {
            let hex = hex.to_ascii_lowercase();
            if !is_sha256(&hex) {
                anyhow::bail!("--sha256 {hex:?} is not 64 hex digits");
            }
            hex
        }
        None => sha256_of(file, meta.len()).await?,
    };
    let format = args.format.unwrap_or_else(|| ImageFormat::of_file_name(file));
    let progress = bar(meta.len(), &format!("uploading {}", args.name));
    let counted = progress.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::open(file).await?, 1 << 20).inspect(
        move |chunk| {
            if let Ok(c) = chunk {
                counted.inc(c.len() as u64);
            }
        },
    );
    let path = format!("/v1/images/{}?format={}&sha256={sha256}", encode_query(&args.name), format.as_str());
    let view: ImageView = client.post_body(&path, reqwest::Body::wrap_stream(stream)).await?;
    progress.finish_and_clear();
    println!("image/{} uploaded: {} bytes, {}, sha256 {}", view.name, view.size.unwrap_or(0), view.format, view.sha256);
    Ok(())
}
