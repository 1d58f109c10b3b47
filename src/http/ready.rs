//! The rule every layer of the stack follows in `call`: the inner service that
//! `poll_ready` made ready serves this request, and a fresh clone (not ready yet) stays
//! behind for the next `poll_ready`. Said once here rather than in each layer.

/// The service `poll_ready` made ready, a clone of it left in its place.
pub(super) fn take<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
