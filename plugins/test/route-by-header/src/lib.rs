//! Routes to the value of the `x-route` header, if any; panics (a trap) when it is `!trap`, so
//! the tests can make a router fail on demand.

use modgate_plugin_sdk::{RequestFacts, Router, export_router};

struct RouteByHeader;

impl Router for RouteByHeader {
    fn route(req: &RequestFacts) -> Option<String> {
        let route = req.header("x-route")?;
        assert_ne!(route, "!trap", "asked to trap");
        Some(route.to_string())
    }
}

export_router!(RouteByHeader);
