//! The request id made for a request that brings none: a v4 UUID, as tower-http's
//! `MakeRequestUuid` makes it, but encoded straight into the header value (no
//! `to_string` and re-parse on every request).

use http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes a v4 UUID request id.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeUuid;

impl MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn each_request_gets_a_fresh_lower_case_v4_uuid() {
        let request = Request::new(());
        let mut make = MakeUuid;
        let id = |make: &mut MakeUuid| {
            let id = make.make_request_id(&request).expect("an id");
            id.header_value().to_str().expect("ASCII").to_owned()
        };
        let (a, b) = (id(&mut make), id(&mut make));
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a, parsed.hyphenated().to_string(), "hyphenated, lower case");
    }
}
