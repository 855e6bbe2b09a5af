//! Placement: filter → score → select over a snapshot of the cluster, Kubernetes-scheduler style, with the
//! application's `need`/`proximity` graph. Pure: no I/O, no async, so it can be tested and benchmarked alone.
