//! Access control commands, for administrators: `token create|list|revoke` (API tokens: the secret is printed
//! once, at creation) and `tenant allow-root|deny-root|list` (whether a tenant's entities may run as root).

use std::time::Duration;

use clap::{Args, Subcommand};
use fos_api::auth::{Role, TenantPolicy, TenantView, TokenCreated, TokenInfo, TokenRequest};

use super::table::{age, Table};
use super::{parse_duration, Global, Output};
use crate::client::{encode_query, Client};

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (it is shown only this once).
    Create(CreateArgs),
    /// List the tokens (never their secrets).
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (the middle part of `fos.<id>.<secret>`, as `token list` shows).
        id: String,
    },
}

/// Arguments of `token create` (the global `--tenant` is the tenant of a view or edit token; an admin token acts
/// on every tenant).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What it may do: `view` (read its tenant), `edit` (change its tenant), `admin` (everything).
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// Who or what it is for.
    #[arg(long, default_value = "")]
    description: String,
    /// Lifetime (`1h`, `30m`, `90s`); without it the token does not expire.
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s.parse::<Role>()? {
        Role::Node => Err("node tokens are made by the nodes themselves".into()),
        r => Ok(r),
    }
}

/// `tenant` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Let the tenant's entities run as root (`runAs: root`).
    AllowRoot {
        /// The tenant.
        tenant: String,
    },
    /// Take that back (the default).
    DenyRoot {
        /// The tenant.
        tenant: String,
    },
    /// List the tenants with a policy.
    List,
}

/// Runs a `token` command.
pub async fn token(client: &Client, global: &Global, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(a) => {
            let req = TokenRequest {
                role: a.role,
                tenant: (a.role != Role::Admin).then(|| global.tenant.clone()),
                description: a.description,
                ttl_seconds: a.ttl.map(|d| d.as_secs().max(1)),
            };
            let made: TokenCreated = client.post("/v1/tokens", &req).await?;
            println!("{}", made.token);
            let scope = made.info.tenant.as_deref().unwrap_or("every tenant");
            eprintln!("token {} ({} of {scope}): keep it, it is not shown again", made.info.id, made.info.role);
        }
        TokenCommand::List { output } => {
            let list: Vec<TokenInfo> = client.get("/v1/tokens").await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                Output::Yaml => print!("{}", serde_yaml_ng::to_string(&list)?),
                _ => {
                    let mut t = Table::new(&["ID", "ROLE", "TENANT", "AGE", "EXPIRES", "DESCRIPTION"]);
                    for i in &list {
                        t.row(vec![
                            i.id.clone(),
                            i.role.to_string(),
                            i.tenant.clone().unwrap_or_else(|| "*".into()),
                            age(i.created),
                            i.expires.map(|e| e.to_rfc3339()).unwrap_or_else(|| "never".into()),
                            i.description.clone(),
                        ]);
                    }
                    t.print();
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let info: TokenInfo = client.delete(&format!("/v1/tokens/{}", encode_query(&id))).await?;
            println!("token {} revoked", info.id);
        }
    }
    Ok(())
}

/// Runs a `tenant` command.
pub async fn tenant(client: &Client, command: TenantCommand) -> anyhow::Result<()> {
    let set = |tenant: String, allow_root: bool| async move {
        let path = format!("/v1/tenants/{}", encode_query(&tenant));
        let view: TenantView = client.put(&path, &TenantPolicy { allow_root }).await?;
        let verb = if view.policy.allow_root { "may" } else { "may not" };
        println!("entities of tenant {} {verb} run as root", view.tenant);
        Ok::<_, anyhow::Error>(())
    };
    match command {
        TenantCommand::AllowRoot { tenant } => set(tenant, true).await?,
        TenantCommand::DenyRoot { tenant } => set(tenant, false).await?,
        TenantCommand::List => {
            let list: Vec<TenantView> = client.get("/v1/tenants").await?;
            let mut t = Table::new(&["TENANT", "ROOT"]);
            for v in &list {
                t.row(vec![v.tenant.clone(), if v.policy.allow_root { "allowed" } else { "no" }.into()]);
            }
            t.print();
        }
    }
    Ok(())
}
