//! Routes to the value of the `x-route` header, if any.

use modgate_plugin_sdk::{RequestFacts, Router, export_router};

struct RouteByHeader;

impl Router for RouteByHeader {
    fn route(req: &RequestFacts) -> Option<String> {
        req.header("x-route").map(str::to_string)
    }
}

export_router!(RouteByHeader);
