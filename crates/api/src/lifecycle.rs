//! The entity lifecycle state machine, the one used by the agent, the controller and the CLI (fog05's transition
//! table):
//!
//! ```text
//! (none) -define-> Defined -configure-> Configured -run-> Running -stop-> Configured
//! Configured -clean-> Defined        Defined -undefine-> (none)
//! Running -pause-> Paused -resume-> Running          Paused -stop-> Configured
//! Running -migrate-> TakingOff -depart-> (none)       (source)
//! (none) -land-> Landing -arrive-> Running            (destination)
//! TakingOff -abort-> Running          Landing -abort-> (none)
//! any -fail-> Error -retry-> the last stable state (Running and Paused fall back to Configured)
//! Error -clean-> Defined
//! ```
//!
//! [`Lifecycle`] holds a state and the last stable state (so a retry knows where to resume); [`Lifecycle::next_toward`]
//! is the one rule for which step brings an instance closer to its desired state.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A lifecycle state (an instance that does not exist has no state: `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    /// Known to the runtime; nothing allocated.
    Defined,
    /// Resources prepared (working directory, disk, network attachment); not running.
    Configured,
    /// Running.
    Running,
    /// Running but suspended.
    Paused,
    /// Being migrated away (source side).
    TakingOff,
    /// Being migrated in (destination side).
    Landing,
    /// A step failed; see the record's error.
    Error,
}

impl State {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Defined => "Defined",
            State::Configured => "Configured",
            State::Running => "Running",
            State::Paused => "Paused",
            State::TakingOff => "TakingOff",
            State::Landing => "Landing",
            State::Error => "Error",
        }
    }

    /// States a user or the controller may ask for.
    pub fn is_desirable(self) -> bool {
        matches!(self, State::Defined | State::Configured | State::Running | State::Paused)
    }

    /// How far up the define → configure → run ladder a state is (none = 0).
    fn rank(state: Option<State>) -> u8 {
        match state {
            None => 0,
            Some(State::Defined) => 1,
            Some(State::Configured) => 2,
            Some(State::Running | State::Paused | State::TakingOff | State::Landing) => 3,
            Some(State::Error) => 0,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// (none) → Defined.
    Define,
    /// Defined → Configured.
    Configure,
    /// Configured → Running.
    Run,
    /// Running or Paused → Configured.
    Stop,
    /// Running → Paused.
    Pause,
    /// Paused → Running.
    Resume,
    /// Configured or Error → Defined.
    Clean,
    /// Defined → (none).
    Undefine,
    /// Running → TakingOff (source of a migration).
    Migrate,
    /// TakingOff → (none): the entity now runs at the destination.
    Depart,
    /// (none) → Landing (destination of a migration).
    Land,
    /// Landing → Running.
    Arrive,
    /// TakingOff → Running, Landing → (none): the migration was abandoned.
    Abort,
    /// any → Error.
    Fail,
    /// Error → the last stable state.
    Retry,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 15] = [
        Action::Define,
        Action::Configure,
        Action::Run,
        Action::Stop,
        Action::Pause,
        Action::Resume,
        Action::Clean,
        Action::Undefine,
        Action::Migrate,
        Action::Depart,
        Action::Land,
        Action::Arrive,
        Action::Abort,
        Action::Fail,
        Action::Retry,
    ];

    /// The action's name, as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Define => "define",
            Action::Configure => "configure",
            Action::Run => "run",
            Action::Stop => "stop",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Clean => "clean",
            Action::Undefine => "undefine",
            Action::Migrate => "migrate",
            Action::Depart => "depart",
            Action::Land => "land",
            Action::Arrive => "arrive",
            Action::Abort => "abort",
            Action::Fail => "fail",
            Action::Retry => "retry",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("cannot {action} an instance that is {}", from.map(State::as_str).unwrap_or("not defined"))]
pub struct TransitionError {
    /// The state the instance was in.
    pub from: Option<State>,
    /// The refused action.
    pub action: Action,
}

/// The state an action leads to from `from`, ignoring `Retry` (which depends on history: see [`Lifecycle`]).
pub fn transition(from: Option<State>, action: Action) -> Result<Option<State>, TransitionError> {
    use Action as A;
    use State as S;
    let to = match (from, action) {
        (_, A::Fail) => Some(S::Error),
        (None, A::Define) => Some(S::Defined),
        (Some(S::Defined), A::Configure) => Some(S::Configured),
        (Some(S::Configured), A::Run) => Some(S::Running),
        (Some(S::Running | S::Paused), A::Stop) => Some(S::Configured),
        (Some(S::Running), A::Pause) => Some(S::Paused),
        (Some(S::Paused), A::Resume) => Some(S::Running),
        (Some(S::Configured | S::Error), A::Clean) => Some(S::Defined),
        (Some(S::Defined), A::Undefine) => None,
        (Some(S::Running), A::Migrate) => Some(S::TakingOff),
        (Some(S::TakingOff), A::Depart) => None,
        (None, A::Land) => Some(S::Landing),
        (Some(S::Landing), A::Arrive) => Some(S::Running),
        (Some(S::TakingOff), A::Abort) => Some(S::Running),
        (Some(S::Landing), A::Abort) => None,
        _ => return Err(TransitionError { from, action }),
    };
    Ok(to)
}

/// An instance's position in the lifecycle: its state and the last stable state it was in (where a retry resumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// The current state (`None`: not defined).
    pub state: Option<State>,
    /// The last state other than Error, TakingOff and Landing.
    #[serde(default)]
    pub last_stable: Option<State>,
}

impl Lifecycle {
    /// An instance that does not exist yet.
    pub fn new() -> Self {
        Lifecycle::default()
    }

    /// An instance in `state`.
    pub fn at(state: Option<State>) -> Self {
        let mut l = Lifecycle { state, last_stable: None };
        l.remember();
        l
    }

    /// Applies `action`, or refuses it leaving the lifecycle unchanged.
    pub fn apply(&mut self, action: Action) -> Result<Option<State>, TransitionError> {
        let to = if action == Action::Retry {
            if self.state != Some(State::Error) {
                return Err(TransitionError { from: self.state, action });
            }
            match self.last_stable {
                Some(State::Running | State::Paused) => Some(State::Configured),
                other => other,
            }
        } else {
            transition(self.state, action)?
        };
        self.state = to;
        self.remember();
        Ok(to)
    }

    /// Whether `action` is allowed now.
    pub fn allows(&self, action: Action) -> bool {
        self.clone_apply(action).is_ok()
    }

    fn clone_apply(&self, action: Action) -> Result<Option<State>, TransitionError> {
        let mut c = *self;
        c.apply(action)
    }

    fn remember(&mut self) {
        match self.state {
            Some(State::Error | State::TakingOff | State::Landing) => {}
            s => self.last_stable = s,
        }
    }

    /// The next step toward `desired`, or `None` when there or when only a migration may move the instance.
    /// `desired` is one of Defined, Configured, Running, Paused, or `None` (gone).
    pub fn next_toward(&self, desired: Option<State>) -> Option<Action> {
        use Action as A;
        use State as S;
        if self.state == desired {
            return None;
        }
        match self.state {
            Some(S::TakingOff | S::Landing) => None,
            Some(S::Error) if desired.is_none() || desired == Some(S::Defined) => Some(A::Clean),
            Some(S::Error) => Some(A::Retry),
            Some(S::Paused) if desired == Some(S::Running) => Some(A::Resume),
            Some(S::Running) if desired == Some(S::Paused) => Some(A::Pause),
            current => {
                let (have, want) = (State::rank(current), State::rank(desired));
                if have < want {
                    match current {
                        None => Some(A::Define),
                        Some(S::Defined) => Some(A::Configure),
                        _ => Some(A::Run),
                    }
                } else {
                    match current {
                        Some(S::Running | S::Paused) => Some(A::Stop),
                        Some(S::Configured) => Some(A::Clean),
                        Some(S::Defined) => Some(A::Undefine),
                        _ => None,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use State as S;

    const ALL_STATES: [Option<State>; 8] = [
        None,
        Some(S::Defined),
        Some(S::Configured),
        Some(S::Running),
        Some(S::Paused),
        Some(S::TakingOff),
        Some(S::Landing),
        Some(S::Error),
    ];

    /// The allowed transitions, written out once more by hand so the table above is checked against them.
    fn allowed() -> Vec<(Option<State>, Action, Option<State>)> {
        let mut v = vec![
            (None, A::Define, Some(S::Defined)),
            (Some(S::Defined), A::Configure, Some(S::Configured)),
            (Some(S::Configured), A::Run, Some(S::Running)),
            (Some(S::Running), A::Stop, Some(S::Configured)),
            (Some(S::Paused), A::Stop, Some(S::Configured)),
            (Some(S::Running), A::Pause, Some(S::Paused)),
            (Some(S::Paused), A::Resume, Some(S::Running)),
            (Some(S::Configured), A::Clean, Some(S::Defined)),
            (Some(S::Error), A::Clean, Some(S::Defined)),
            (Some(S::Defined), A::Undefine, None),
            (Some(S::Running), A::Migrate, Some(S::TakingOff)),
            (Some(S::TakingOff), A::Depart, None),
            (None, A::Land, Some(S::Landing)),
            (Some(S::Landing), A::Arrive, Some(S::Running)),
            (Some(S::TakingOff), A::Abort, Some(S::Running)),
            (Some(S::Landing), A::Abort, None),
        ];
        for s in ALL_STATES {
            v.push((s, A::Fail, Some(S::Error)));
        }
        v
    }

    #[test]
    fn every_allowed_transition_leads_where_the_table_says() {
        for (from, action, to) in allowed() {
            assert_eq!(transition(from, action), Ok(to), "{from:?} -{action}->");
        }
    }

    #[test]
    fn every_other_transition_is_refused() {
        let allowed = allowed();
        for from in ALL_STATES {
            for action in Action::ALL {
                if action == A::Retry || allowed.iter().any(|(f, a, _)| *f == from && *a == action) {
                    continue;
                }
                assert_eq!(transition(from, action), Err(TransitionError { from, action }), "{from:?} -{action}->");
            }
        }
    }

    #[test]
    fn refusal_message_names_state_and_action() {
        let e = transition(Some(S::Defined), A::Run).unwrap_err();
        assert_eq!(e.to_string(), "cannot run an instance that is Defined");
        let e = transition(None, A::Stop).unwrap_err();
        assert_eq!(e.to_string(), "cannot stop an instance that is not defined");
    }

    #[test]
    fn retry_resumes_from_the_last_stable_state() {
        let mut l = Lifecycle::at(Some(S::Running));
        l.apply(A::Fail).unwrap();
        assert_eq!(l.state, Some(S::Error));
        assert_eq!(l.apply(A::Retry), Ok(Some(S::Configured)), "a failed run resumes from Configured");
        let mut l = Lifecycle::at(Some(S::Defined));
        l.apply(A::Fail).unwrap();
        assert_eq!(l.apply(A::Retry), Ok(Some(S::Defined)));
        let mut l = Lifecycle::new();
        l.apply(A::Fail).unwrap();
        assert_eq!(l.apply(A::Retry), Ok(None), "a failed define resumes from nothing");
        let mut ok = Lifecycle::at(Some(S::Running));
        assert!(ok.apply(A::Retry).is_err(), "retry only from Error");
        assert_eq!(ok.state, Some(S::Running), "a refused action changes nothing");
    }

    #[test]
    fn next_toward_walks_up_and_down_the_ladder() {
        let walk = |from: Option<State>, to: Option<State>| {
            let mut l = Lifecycle::at(from);
            let mut steps = Vec::new();
            while let Some(a) = l.next_toward(to) {
                l.apply(a).unwrap();
                steps.push(a);
                assert!(steps.len() < 10, "no progress");
            }
            assert_eq!(l.state, to);
            steps
        };
        assert_eq!(walk(None, Some(S::Running)), [A::Define, A::Configure, A::Run]);
        assert_eq!(walk(Some(S::Running), None), [A::Stop, A::Clean, A::Undefine]);
        assert_eq!(walk(Some(S::Paused), None), [A::Stop, A::Clean, A::Undefine]);
        assert_eq!(walk(None, Some(S::Paused)), [A::Define, A::Configure, A::Run, A::Pause]);
        assert_eq!(walk(Some(S::Paused), Some(S::Running)), [A::Resume]);
        assert_eq!(walk(Some(S::Running), Some(S::Defined)), [A::Stop, A::Clean]);
        assert_eq!(walk(Some(S::Defined), Some(S::Configured)), [A::Configure]);
    }

    #[test]
    fn next_toward_from_error_retries_or_cleans() {
        let mut l = Lifecycle::at(Some(S::Running));
        l.apply(A::Fail).unwrap();
        assert_eq!(l.next_toward(Some(S::Running)), Some(A::Retry));
        assert_eq!(l.next_toward(None), Some(A::Clean));
        let moving = Lifecycle::at(Some(S::TakingOff));
        assert_eq!(moving.next_toward(None), None, "migration steps are not reconciled");
    }
}
