//! Given / when / then for the aggregates' tests, written once over
//! [`EventSourced`]: given the events that happened, when a command comes,
//! then expect these events, or this error.
//!
//! ```ignore
//! Deployment::given(vec![requested(vm_spec())])
//!     .when(DeploymentCommand::AssignNode { node, reason: None, at: t0() })
//!     .then_expect_events(vec![assigned()]);
//! ```
//!
//! An aggregate takes part with one `impl Scenario for … {}` in its tests;
//! one with rules that must hold after every event (the wallet's ledger)
//! writes them in [`Scenario::check_invariants`], and every step checks them.

use std::fmt::Debug;

use crate::kernel::EventSourced;

/// An aggregate driven through given / when / then.
pub(crate) trait Scenario: EventSourced + Clone + Debug {
    /// Panics if the state breaks a rule that must always hold. Called
    /// after every event [`given`](Scenario::given) folds in and every event
    /// an accepted command decides. Most aggregates have none beyond their
    /// types.
    fn check_invariants(&self) {}

    /// The aggregate after these events, from its empty state.
    #[track_caller]
    fn given(events: impl IntoIterator<Item = Self::Event>) -> Self {
        let mut aggregate = Self::default();
        for event in events {
            aggregate.apply_one(&event);
            aggregate.check_invariants();
        }
        aggregate
    }

    /// What the aggregate decides for a command; nothing is applied until a
    /// `then_` step asks.
    fn when(&self, command: Self::Command) -> Then<'_, Self> {
        Then {
            aggregate: self,
            decided: self.decide_command(command),
        }
    }
}

/// A decision, waiting for what the test expects of it.
#[must_use = "a decision asserts nothing until a then_ step"]
pub(crate) struct Then<'a, A: Scenario> {
    aggregate: &'a A,
    decided: Result<Vec<A::Event>, A::Error>,
}

impl<A: Scenario> Then<'_, A>
where
    A::Error: PartialEq,
{
    /// The command is accepted with exactly these events, and the state
    /// they lead to keeps the invariants.
    #[track_caller]
    pub(crate) fn then_expect_events(self, expected: Vec<A::Event>) {
        assert_eq!(self.decided, Ok(expected));
        self.then_accepted();
    }

    /// The command is accepted and changes nothing: an idempotent repeat.
    #[track_caller]
    pub(crate) fn then_expect_no_events(self) {
        self.then_expect_events(vec![]);
    }

    /// The command is refused with exactly this error.
    #[track_caller]
    pub(crate) fn then_expect_error(self, expected: A::Error) {
        assert_eq!(self.decided, Err(expected));
        self.aggregate.check_invariants();
    }
}

impl<A: Scenario> Then<'_, A> {
    /// The command is accepted: the aggregate after its events, for the
    /// next step of a longer scenario.
    #[track_caller]
    pub(crate) fn then_accepted(self) -> A {
        let events = match self.decided {
            Ok(events) => events,
            Err(error) => panic!("expected the command to be accepted, got {error:?}"),
        };
        let mut after = self.aggregate.clone();
        for event in &events {
            after.apply_one(event);
            after.check_invariants();
        }
        after
    }

    /// The command is refused: the error, for checks an exact comparison
    /// cannot make (only some of its fields matter).
    #[track_caller]
    pub(crate) fn then_refused(self) -> A::Error {
        match self.decided {
            Ok(events) => panic!("expected the command to be refused, got {events:?}"),
            Err(error) => error,
        }
    }
}
