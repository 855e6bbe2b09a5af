//! `fosctl delete`: by manifest (`-f`: everything the files describe), by kind and names (`delete network lan`,
//! `delete image debian plugin…`), or by name alone (`delete wordpress`: an application or standalone entity).
//! Applications are marked for teardown (components stop in reverse dependency order); Networks, Images, Plugins
//! and Secrets are removed at once, and a network or image still in use is refused with the names of its users.

use clap::Args;
use fos_api::wire::{AppView, ObjectChange};
use fos_api::{Object, ObjectKind};

use super::load;
use super::wait::wait_deleted;
use super::{Global, Timeout};
use crate::client::{encode_query, Client};

/// Arguments of `delete`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  fosctl delete wordpress              an application or standalone entity\n  \
fosctl delete app wordpress chain    applications by kind and name\n  \
fosctl delete network lan            a Network object (refused while an application uses it)\n  \
fosctl delete image debian           an Image (refused while an entity uses it)\n  \
fosctl delete -f examples/wordpress  everything the manifests describe")]
pub struct DeleteArgs {
    /// Delete what these manifests describe (a file, a directory, or `-`).
    #[arg(short = 'f', long = "filename", conflicts_with = "names")]
    files: Vec<String>,
    /// `NAME…` (applications or standalone entities) or `KIND NAME…` (app, entity, network, image, plugin, secret).
    names: Vec<String>,
    /// Wait until every application deleted is gone.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    timeout: Timeout,
}

/// One thing to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its kind (Application also stands for a standalone Entity).
    pub kind: ObjectKind,
    /// Its tenant (ignored for images and plugins).
    pub tenant: String,
    /// Its name.
    pub name: String,
}

/// The kind a word names (`app`, `networks`, `image`…), if it names one.
pub fn kind_word(word: &str) -> Option<ObjectKind> {
    Some(match word.to_ascii_lowercase().as_str() {
        "app" | "apps" | "application" | "applications" | "entity" | "entities" => ObjectKind::Application,
        "network" | "networks" | "net" => ObjectKind::Network,
        "image" | "images" => ObjectKind::Image,
        "plugin" | "plugins" => ObjectKind::Plugin,
        "secret" | "secrets" => ObjectKind::Secret,
        "node" | "nodes" => ObjectKind::Node,
        _ => return None,
    })
}

/// The targets of the positional arguments: `NAME…` or `KIND NAME…`.
pub fn targets_of(words: &[String], tenant: &str) -> anyhow::Result<Vec<Target>> {
    let (kind, names) = match words {
        [] => return Ok(Vec::new()),
        [first, rest @ ..] if !rest.is_empty() && kind_word(first).is_some() => {
            (kind_word(first).unwrap_or(ObjectKind::Application), rest)
        }
        all => (ObjectKind::Application, all),
    };
    if kind == ObjectKind::Node {
        anyhow::bail!("nodes are not deleted: a node leaves when its fosd stops");
    }
    Ok(names.iter().map(|n| Target { kind, tenant: tenant.to_string(), name: n.clone() }).collect())
}

/// The API path that deletes `t`.
fn path(t: &Target) -> String {
    let (tenant, name) = (encode_query(&t.tenant), encode_query(&t.name));
    match t.kind {
        ObjectKind::Network => format!("/v1/networks/{tenant}/{name}"),
        ObjectKind::Secret => format!("/v1/secrets/{tenant}/{name}"),
        ObjectKind::Image => format!("/v1/images/{name}"),
        ObjectKind::Plugin => format!("/v1/plugins/{name}"),
        _ => format!("/v1/apps/{tenant}/{name}"),
    }
}

/// `fosctl delete`.
pub async fn delete(client: &Client, global: &Global, args: DeleteArgs) -> anyhow::Result<()> {
    let mut targets: Vec<Target> = Vec::new();
    if !args.files.is_empty() {
        for l in load::load(&args.files)?.objects() {
            let obj: Object = super::apply::with_tenant(l.object.clone(), global);
            let kind = match obj.kind() {
                ObjectKind::Entity => ObjectKind::Application,
                ObjectKind::Node => {
                    eprintln!("{}: Node {} is kept (a node leaves when its fosd stops)", l.file, obj.name());
                    continue;
                }
                k => k,
            };
            targets.push(Target { kind, tenant: obj.metadata().tenant().to_string(), name: obj.name().to_string() });
        }
        // Applications first, so that the networks and images they use are free when their turn comes.
        targets.sort_by_key(|t| t.kind != ObjectKind::Application);
    }
    targets.extend(targets_of(&args.names, &global.tenant)?);
    if targets.is_empty() {
        anyhow::bail!("nothing to delete: give NAME…, KIND NAME… or -f FILE");
    }
    let mut apps = Vec::new();
    for t in &targets {
        if t.kind == ObjectKind::Application {
            let view: AppView = client.delete(&path(t)).await?;
            let kind = view.record.object.kind().as_str().to_ascii_lowercase();
            println!("{kind}/{} deleting", t.name);
            apps.push((t.clone(), kind));
        } else {
            if args.wait && !apps.is_empty() {
                // What uses it may be on its way out: wait for the applications first.
                wait_all(client, &mut apps, args.timeout.timeout).await?;
            }
            let change: ObjectChange = client.delete(&path(t)).await?;
            println!("{}/{} deleted", change.kind.as_str().to_ascii_lowercase(), change.name);
        }
    }
    if args.wait {
        wait_all(client, &mut apps, args.timeout.timeout).await?;
    }
    Ok(())
}

async fn wait_all(
    client: &Client,
    apps: &mut Vec<(Target, String)>,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    for (t, kind) in apps.drain(..) {
        wait_deleted(client, &t.tenant, &t.name, deadline).await?;
        println!("{kind}/{} deleted", t.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_kind_word_first_names_the_kind_of_the_rest() {
        let t = targets_of(&words("app chain"), "default").unwrap();
        assert_eq!(t, vec![Target { kind: ObjectKind::Application, tenant: "default".into(), name: "chain".into() }]);
        let t = targets_of(&words("network lan wan"), "t1").unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.kind == ObjectKind::Network && t.tenant == "t1"));
        assert_eq!(targets_of(&words("images debian"), "d").unwrap()[0].kind, ObjectKind::Image);
        // A single word is an application's name, even one that reads like a kind.
        assert_eq!(targets_of(&words("network"), "d").unwrap()[0].name, "network");
        assert_eq!(targets_of(&words("wp chain"), "d").unwrap().len(), 2);
        assert!(targets_of(&words("node n1"), "d").is_err());
    }

    #[test]
    fn every_kind_has_its_path() {
        let t = |kind, name: &str| Target { kind, tenant: "t".into(), name: name.into() };
        assert_eq!(path(&t(ObjectKind::Application, "wp")), "/v1/apps/t/wp");
        assert_eq!(path(&t(ObjectKind::Network, "lan")), "/v1/networks/t/lan");
        assert_eq!(path(&t(ObjectKind::Image, "deb")), "/v1/images/deb");
        assert_eq!(path(&t(ObjectKind::Plugin, "net")), "/v1/plugins/net");
        assert_eq!(path(&t(ObjectKind::Secret, "db")), "/v1/secrets/t/db");
    }
}
