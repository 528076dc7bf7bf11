//! Checks that need more than the session text: is this a create or an update, and of what.

use crate::diagnostic::{Diagnostics, FieldPath, Problem, Sink};
use crate::ids::SessionHash;
use crate::model::Session;

/// Checks a session submitted to create a new session: it must not name a `predecessor`.
pub fn check_create(session: &Session) -> Result<(), Diagnostics> {
    let mut sink = Sink::new(&session.origin.file);
    if let (Some(hash), Some(at)) = (&session.predecessor, session.origin.predecessor_at) {
        sink.push(
            at,
            &FieldPath::root().key("predecessor"),
            Problem::Predecessor,
            format!(
                "a new session has no predecessor: remove `predecessor` (found {hash}), or update the existing session instead"
            ),
        );
    }
    sink.finish(())
}

/// Checks a session submitted to replace the session whose hash is `current`: its
/// `predecessor` must be `current` (so nobody overwrites a version they have not seen).
pub fn check_update(session: &Session, current: &SessionHash) -> Result<(), Diagnostics> {
    let mut sink = Sink::new(&session.origin.file);
    let path = FieldPath::root().key("predecessor");
    match (&session.predecessor, session.origin.predecessor_at) {
        (Some(hash), Some(at)) if hash != current => sink.push(
            at,
            &path,
            Problem::Predecessor,
            format!(
                "the session changed since it was read: predecessor is {hash}, but the current session's hash is {current}"
            ),
        ),
        (Some(_), _) => {}
        (None, _) => sink.push(
            session.origin.name_at,
            &path,
            Problem::Predecessor,
            format!("an update must name the session it replaces: add `predecessor: {current}`"),
        ),
    }
    sink.finish(())
}
