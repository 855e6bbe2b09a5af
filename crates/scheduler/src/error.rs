//! Errors that make an application impossible to schedule at all (as opposed to components that do not fit,
//! which a plan reports as unschedulable with reasons).

/// The application cannot be scheduled as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Two components have the same name.
    #[error("component `{0}` is defined twice")]
    DuplicateComponent(String),
    /// A component needs a component that does not exist.
    #[error("component `{component}` needs `{need}`, which is not a component of the application")]
    UnknownNeed {
        /// The component.
        component: String,
        /// The unknown name.
        need: String,
    },
    /// A proximity rule names a component that does not exist.
    #[error("component `{component}` wants to be near `{to}`, which is not a component of the application")]
    UnknownProximity {
        /// The component.
        component: String,
        /// The unknown name.
        to: String,
    },
    /// `need` edges form a cycle.
    #[error("`need` forms a cycle through {}", .0.join(", "))]
    NeedCycle(Vec<String>),
}
