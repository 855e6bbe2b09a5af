//! The VM runtime's calls to libvirt, through the `virt` crate (libvirt's C library): one connection, opened on
//! first use and opened again when it breaks (libvirtd restarted), and one function per lifecycle call. libvirt's
//! calls block, so each runs on tokio's blocking pool. Calls on a domain that is not there (or not in the state the
//! call changes) succeed, so every step can be repeated after failing half-way.

use std::sync::{Arc, Mutex};

use virt::connect::Connect;
use virt::domain::{Domain, MigrateParameters};
use virt::error::{Error as VirtError, ErrorNumber};

use crate::runtime::RuntimeError;

/// A domain's state as libvirt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// Not defined.
    Absent,
    /// Defined, not running.
    Shutoff,
    /// Running (or blocked, or shutting down).
    Running,
    /// Suspended.
    Paused,
    /// Crashed or in a state fos does not drive (pmsuspended).
    Other(u32),
}

/// Where a live migration takes a domain.
#[derive(Debug, Clone)]
pub struct MigrateTo {
    /// The destination's libvirt daemon, as this one reaches it.
    pub uri: String,
    /// The destination's address for the migration's data (default: libvirt's choice, the destination's host name).
    pub address: Option<String>,
    /// The domain's name there.
    pub name: String,
    /// The domain's definition there (its paths, with the UUID it has here).
    pub xml: String,
    /// The longest pause of the guest the switch-over may take (ms; QEMU's default, 300 ms, when not given).
    pub max_downtime_ms: Option<u64>,
}

/// What libvirt reports of a finished migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStats {
    /// How long the guest was paused for the switch-over (ms).
    pub downtime_ms: Option<u64>,
    /// How long the migration took (ms).
    pub elapsed_ms: Option<u64>,
    /// Memory moved (bytes).
    pub memory_bytes: Option<u64>,
    /// Disk data moved (bytes).
    pub disk_bytes: Option<u64>,
}

/// One libvirt daemon, by URI.
#[derive(Clone)]
pub struct Libvirt {
    uri: String,
    conn: Arc<Mutex<Option<Connect>>>,
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt").field("uri", &self.uri).finish()
    }
}

fn failed(doing: &str, e: VirtError) -> RuntimeError {
    RuntimeError::Failed(format!("libvirt: {doing}: {}", e.message()))
}

fn no_domain(e: &VirtError) -> bool {
    e.code() == ErrorNumber::NoDomain
}

impl Libvirt {
    /// A handle on the daemon at `uri` (nothing is opened yet).
    pub fn new(uri: impl Into<String>) -> Self {
        Libvirt { uri: uri.into(), conn: Arc::new(Mutex::new(None)) }
    }

    /// The daemon's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `f` with the connection (opened when needed) on the blocking pool; a broken connection is dropped so
    /// that the next call opens a new one.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect) -> Result<T, RuntimeError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = this.conn.lock().unwrap_or_else(|e| e.into_inner());
            if guard.as_ref().is_some_and(|c| !c.is_alive().unwrap_or(false)) {
                if let Some(mut old) = guard.take() {
                    let _ = old.close();
                }
            }
            if guard.is_none() {
                let conn =
                    Connect::open(Some(&this.uri)).map_err(|e| failed(&format!("connecting to {}", this.uri), e))?;
                *guard = Some(conn);
            }
            let conn = guard.as_ref().ok_or_else(|| RuntimeError::Failed("libvirt: no connection".into()))?;
            f(conn)
        })
        .await
        .map_err(|e| RuntimeError::Failed(format!("libvirt call: {e}")))?
    }

    /// The daemon's version and capabilities XML (whether it answers at all).
    pub async fn capabilities(&self) -> Result<(u32, String), RuntimeError> {
        self.with(|c| {
            let version = c.get_lib_version().map_err(|e| failed("reading its version", e))?;
            let caps = c.get_capabilities().map_err(|e| failed("reading its capabilities", e))?;
            Ok((version, caps))
        })
        .await
    }

    /// Defines (or redefines, keeping its UUID) the persistent domain `name` of `xml`.
    pub async fn define(&self, name: &str, xml: String) -> Result<(), RuntimeError> {
        let name = name.to_string();
        self.with(move |c| {
            let xml = match Domain::lookup_by_name(c, &name) {
                Ok(d) if !xml.contains("<uuid>") => {
                    let uuid = d.get_uuid_string().map_err(|e| failed(&format!("reading the UUID of {name}"), e))?;
                    super::domain::with_uuid(&xml, &name, &uuid)
                }
                Ok(_) => xml,
                Err(e) if no_domain(&e) => xml,
                Err(e) => return Err(failed(&format!("looking up domain {name}"), e)),
            };
            Domain::define_xml(c, &xml).map(|_| ()).map_err(|e| failed(&format!("defining domain {name}"), e))
        })
        .await
    }

    /// The state of domain `name`.
    pub async fn state(&self, name: &str) -> Result<DomainState, RuntimeError> {
        let name = name.to_string();
        self.with(move |c| state_of(c, &name)).await
    }

    /// Starts domain `name` (nothing when it runs already).
    pub async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        self.act(name, "starting", |d, state| match state {
            DomainState::Shutoff | DomainState::Other(_) => d.create().map(|_| ()),
            _ => Ok(()),
        })
        .await
    }

    /// Suspends domain `name` (nothing when it is paused already).
    pub async fn suspend(&self, name: &str) -> Result<(), RuntimeError> {
        self.act(name, "suspending", |d, state| match state {
            DomainState::Running => d.suspend().map(|_| ()),
            _ => Ok(()),
        })
        .await
    }

    /// Resumes domain `name` (nothing when it is not paused).
    pub async fn resume(&self, name: &str) -> Result<(), RuntimeError> {
        self.act(name, "resuming", |d, state| match state {
            DomainState::Paused => d.resume().map(|_| ()),
            _ => Ok(()),
        })
        .await
    }

    /// Asks the guest of domain `name` to power off (ACPI; nothing when it is not running).
    pub async fn shutdown(&self, name: &str) -> Result<(), RuntimeError> {
        self.act(name, "shutting down", |d, state| match state {
            DomainState::Running => d.shutdown().map(|_| ()),
            _ => Ok(()),
        })
        .await
    }

    /// Stops domain `name` at once (nothing when it is not running).
    pub async fn destroy(&self, name: &str) -> Result<(), RuntimeError> {
        self.act(name, "destroying", |d, state| match state {
            DomainState::Running | DomainState::Paused | DomainState::Other(_) => d.destroy(),
            _ => Ok(()),
        })
        .await
    }

    /// Forgets domain `name` (stopping it first when it runs; nothing when it is not defined).
    pub async fn undefine(&self, name: &str) -> Result<(), RuntimeError> {
        self.act(name, "undefining", |d, state| {
            if matches!(state, DomainState::Running | DomainState::Paused | DomainState::Other(_)) {
                d.destroy()?;
            }
            d.undefine()
        })
        .await
    }

    /// The names of the domains whose name starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, RuntimeError> {
        let prefix = prefix.to_string();
        self.with(move |c| {
            let domains = c.list_all_domains(0).map_err(|e| failed("listing domains", e))?;
            Ok(domains.iter().filter_map(|d| d.get_name().ok()).filter(|n| n.starts_with(&prefix)).collect())
        })
        .await
    }

    /// The XML of domain `name` as libvirt holds it (with what it filled in), when it is defined.
    pub async fn xml(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let name = name.to_string();
        self.with(move |c| match Domain::lookup_by_name(c, &name) {
            Ok(d) => d.get_xml_desc(0).map(Some).map_err(|e| failed(&format!("reading domain {name}"), e)),
            Err(e) if no_domain(&e) => Ok(None),
            Err(e) => Err(failed(&format!("looking up domain {name}"), e)),
        })
        .await
    }

    /// The UUID of domain `name`, when it is defined.
    pub async fn uuid(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let name = name.to_string();
        self.with(move |c| match Domain::lookup_by_name(c, &name) {
            Ok(d) => d.get_uuid_string().map(Some).map_err(|e| failed(&format!("reading the UUID of {name}"), e)),
            Err(e) if no_domain(&e) => Ok(None),
            Err(e) => Err(failed(&format!("looking up domain {name}"), e)),
        })
        .await
    }

    /// Migrates domain `name`, running or paused, live to the daemon at `to.uri` (peer to peer: this daemon talks to
    /// that one), its memory and the top of each writable disk (the base images are there already) copied while it
    /// runs; the domain there is `to.name` as `to.xml` defines it. Here it ends shut off, its definition kept.
    pub async fn migrate(&self, name: &str, to: MigrateTo) -> Result<MigrationStats, RuntimeError> {
        let name = name.to_string();
        self.with(move |c| {
            let d = Domain::lookup_by_name(c, &name).map_err(|e| failed(&format!("looking up domain {name}"), e))?;
            let params = MigrateParameters {
                dest_name: Some(to.name.clone()),
                dest_xml: Some(to.xml.clone()),
                uri: to.address.as_ref().map(|a| format!("tcp://{a}")),
                ..MigrateParameters::default()
            };
            if let Some(ms) = to.max_downtime_ms {
                d.migrate_set_max_downtime(ms, 0)
                    .map_err(|e| failed(&format!("setting the longest pause of {name}'s migration"), e))?;
            }
            // A guest dirtying memory faster than it moves is slowed down until the rest fits in that pause.
            let flags = virt::sys::VIR_MIGRATE_LIVE
                | virt::sys::VIR_MIGRATE_PEER2PEER
                | virt::sys::VIR_MIGRATE_NON_SHARED_INC
                | virt::sys::VIR_MIGRATE_AUTO_CONVERGE;
            d.migrate_to_uri3(Some(&to.uri), params, flags)
                .map_err(|e| failed(&format!("migrating domain {name} to {}", to.uri), e))?;
            let stats = d.get_job_stats(virt::sys::VIR_DOMAIN_JOB_STATS_COMPLETED).ok();
            Ok(MigrationStats {
                downtime_ms: stats.as_ref().and_then(|s| s.downtime),
                elapsed_ms: stats.as_ref().and_then(|s| s.time_elapsed),
                memory_bytes: stats.as_ref().and_then(|s| s.mem_processed),
                disk_bytes: stats.as_ref().and_then(|s| s.disk_processed),
            })
        })
        .await
    }

    async fn act(
        &self,
        name: &str,
        doing: &'static str,
        f: impl FnOnce(&Domain, DomainState) -> Result<(), VirtError> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let name = name.to_string();
        self.with(move |c| {
            let d = match Domain::lookup_by_name(c, &name) {
                Ok(d) => d,
                Err(e) if no_domain(&e) => return Ok(()),
                Err(e) => return Err(failed(&format!("looking up domain {name}"), e)),
            };
            let state = domain_state(&d).map_err(|e| failed(&format!("reading the state of {name}"), e))?;
            match f(&d, state) {
                Ok(()) => Ok(()),
                Err(e) if no_domain(&e) => Ok(()),
                Err(e) => Err(failed(&format!("{doing} domain {name}"), e)),
            }
        })
        .await
    }
}

fn domain_state(d: &Domain) -> Result<DomainState, VirtError> {
    let (state, _reason) = d.get_state()?;
    Ok(match state {
        virt::sys::VIR_DOMAIN_RUNNING | virt::sys::VIR_DOMAIN_BLOCKED | virt::sys::VIR_DOMAIN_SHUTDOWN => {
            DomainState::Running
        }
        virt::sys::VIR_DOMAIN_PAUSED => DomainState::Paused,
        virt::sys::VIR_DOMAIN_SHUTOFF | virt::sys::VIR_DOMAIN_NOSTATE => DomainState::Shutoff,
        other => DomainState::Other(other),
    })
}

fn state_of(c: &Connect, name: &str) -> Result<DomainState, RuntimeError> {
    match Domain::lookup_by_name(c, name) {
        Ok(d) => domain_state(&d).map_err(|e| failed(&format!("reading the state of {name}"), e)),
        Err(e) if no_domain(&e) => Ok(DomainState::Absent),
        Err(e) => Err(failed(&format!("looking up domain {name}"), e)),
    }
}
