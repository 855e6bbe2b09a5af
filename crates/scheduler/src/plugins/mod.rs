//! The scheduling framework's plugins, Kubernetes style: filters say whether a node can take an instance (and
//! why not, with numbers); scores rank the nodes that can. Both see the same [`Context`].

pub mod filter;
pub mod score;

use crate::options::Options;
use crate::request::Request;
use crate::snapshot::ClusterSnapshot;
use crate::state::Working;

/// What a plugin looks at: the cluster, the run's working state, the instance's request and the options.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The cluster.
    pub snapshot: &'a ClusterSnapshot,
    /// Free capacity and this application's placements so far.
    pub state: &'a Working<'a>,
    /// What the instance asks.
    pub request: &'a Request<'a>,
    /// The run's options.
    pub options: &'a Options,
}
