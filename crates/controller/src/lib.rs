//! The control plane: the reconcilers (applications, nodes, migrations) run by the elected leader, and the HTTP API
//! that `fosctl` talks to.
