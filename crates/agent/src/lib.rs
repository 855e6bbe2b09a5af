//! The node agent: discovers the node, keeps its heartbeat, and drives runtime and network plugins so that the
//! node's actual instances match its desired instances.

pub mod network;
