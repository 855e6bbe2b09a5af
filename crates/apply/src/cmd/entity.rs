//! The seed's imperative lifecycle on a standalone entity: `define -f FILE` stores it without running it, then
//! `configure`, `run`, `stop`, `pause`, `resume`, `clean`, `undefine` move it one step each (refused by the server
//! when the lifecycle does not allow the step from the entity's current state).

use clap::Subcommand;
use fos_api::wire::{AppView, ApplyRequest, ApplyResponse, STATE_ANNOTATION};
use fos_api::Object;

use super::load::{self, locate};
use super::Global;
use crate::client::Client;

/// `entity` subcommands.
#[derive(Debug, Subcommand)]
pub enum EntityCommand {
    /// Store an Entity manifest without starting it (it is defined on its node).
    Define {
        /// The manifest (a file with one Entity, or `-`).
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Prepare it (Defined → Configured).
    Configure {
        /// The entity.
        name: String,
    },
    /// Start it (Configured → Running).
    Run {
        /// The entity.
        name: String,
    },
    /// Stop it (Running/Paused → Configured).
    Stop {
        /// The entity.
        name: String,
    },
    /// Suspend it (Running → Paused).
    Pause {
        /// The entity.
        name: String,
    },
    /// Continue it (Paused → Running).
    Resume {
        /// The entity.
        name: String,
    },
    /// Release what configure prepared (Configured → Defined).
    Clean {
        /// The entity.
        name: String,
    },
    /// Forget it (Defined → gone).
    Undefine {
        /// The entity.
        name: String,
    },
}

/// `fosctl entity …`.
pub async fn entity(client: &Client, global: &Global, cmd: EntityCommand) -> anyhow::Result<()> {
    let (verb, name) = match cmd {
        EntityCommand::Define { file } => return define(client, &file).await,
        EntityCommand::Configure { name } => ("configure", name),
        EntityCommand::Run { name } => ("run", name),
        EntityCommand::Stop { name } => ("stop", name),
        EntityCommand::Pause { name } => ("pause", name),
        EntityCommand::Resume { name } => ("resume", name),
        EntityCommand::Clean { name } => ("clean", name),
        EntityCommand::Undefine { name } => ("undefine", name),
    };
    let _: AppView = client.post(&format!("/v1/entities/{}/{name}/{verb}", global.tenant), &()).await?;
    println!("entity/{name} {verb}");
    Ok(())
}

async fn define(client: &Client, file: &str) -> anyhow::Result<()> {
    let manifests = load::load(&[file.to_string()])?;
    let mut objects = Vec::new();
    for l in manifests.objects() {
        let Object::Entity(mut e) = l.object.clone() else {
            anyhow::bail!("{}: {} {} is not an Entity", l.file, l.object.kind(), l.object.name());
        };
        e.metadata.annotations.insert(STATE_ANNOTATION.into(), "Defined".into());
        objects.push(Object::Entity(e));
    }
    let body = ApplyRequest::new(&objects);
    let resp: ApplyResponse = client.post("/v1/apply", &body).await.map_err(|e| locate(e, &manifests))?;
    for c in &resp.changes {
        println!("entity/{} defined ({})", c.name, c.change);
    }
    Ok(())
}
