//! What every aggregate shares: the pure decide/apply pair the command bus
//! calls, and the one `cqrs_es::Aggregate` implementation the event store
//! needs, written once as [`event_sourced!`](crate::event_sourced).
//!
//! An aggregate writes its rules as two inherent methods,
//! `decide(&self, Command) -> Result<Vec<Event>, Error>` and
//! `apply_event(&mut self, &Event)`, then names its store type and its
//! command, event and error types in one `event_sourced!` line.

/// An aggregate as the command bus drives it: decide from the current
/// state, then fold the events decided into it. Both pure.
pub trait EventSourced: cqrs_es::Aggregate + 'static {
    /// The events a command causes, or why it is refused.
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state.
    fn apply_one(&mut self, event: &Self::Event);
}

/// Implements [`EventSourced`] and `cqrs_es::Aggregate` for an aggregate
/// whose rules are its inherent `decide` and `apply_event`:
/// `event_sourced!(Node, "node", NodeCommand, NodeEvent, NodeError);`
#[macro_export]
macro_rules! event_sourced {
    ($aggregate:ty, $type_name:literal, $command:ty, $event:ty, $error:ty) => {
        impl $crate::kernel::EventSourced for $aggregate {
            fn decide_command(&self, command: $command) -> Result<Vec<$event>, $error> {
                self.decide(command)
            }

            fn apply_one(&mut self, event: &$event) {
                self.apply_event(event);
            }
        }

        impl ::cqrs_es::Aggregate for $aggregate {
            const TYPE: &'static str = $type_name;
            type Command = $command;
            type Event = $event;
            type Error = $error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &::cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for event in self.decide(command)? {
                    sink.write(event, self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                self.apply_event(&event);
            }
        }
    };
}
