//! The committed Go bindings are what the generator makes from today's WIT.

#[test]
fn committed_go_bindings_are_current() {
    let generated = modgate_go_gen::generate().expect("generating the Go bindings");
    let committed =
        modgate_go_gen::read(&modgate_go_gen::bindings_dir()).expect("reading the committed ones");
    let stale: Vec<&String> = generated
        .keys()
        .chain(committed.keys())
        .filter(|name| generated.get(*name) != committed.get(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "plugin-sdk/go/internal/wit is stale ({stale:?}): run `cargo run -p modgate-go-gen` and commit the result"
    );
}
