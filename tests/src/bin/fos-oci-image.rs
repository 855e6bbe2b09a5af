//! Builds the test image (busybox httpd from Debian's busybox-static, serving `/www` on port 8080) and writes it as
//! an OCI image layout archive or pushes it to a registry reached over plain HTTP:
//!
//! ```text
//! fos-oci-image layout FILE.tar
//! fos-oci-image push HOST:PORT/NAME:TAG
//! ```

use fos_e2e::oci::{busybox_image, push_to, write_layout_tar};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let image = busybox_image(8080, "hello from a fos container\n", 0);
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["layout", file] => write_layout_tar(&image, std::path::Path::new(file)),
        ["push", reference] => {
            let (registry, _) = reference.split_once('/').ok_or_else(|| anyhow::anyhow!("HOST:PORT/NAME:TAG"))?;
            let digest = push_to(registry, reference, &image);
            println!("{reference}@{digest}");
        }
        _ => anyhow::bail!("usage: fos-oci-image layout FILE.tar | push HOST:PORT/NAME:TAG"),
    }
    Ok(())
}
