use super::*;

#[test]
fn embedded_defaults_resolve() {
    let c = Config::load_with_env(None, |_| None).expect("defaults load");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert!(c.routes.route("rsc.io/quote").is_some());
}
