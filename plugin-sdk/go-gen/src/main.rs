//! Regenerates the Go SDK's bindings: `cargo run -p modgate-go-gen` (from anywhere in the
//! workspace). `cargo test -p modgate-go-gen` fails when the committed bindings are stale.
//!
//! See [`modgate_go_gen`] for what is generated and why.

fn main() -> anyhow::Result<()> {
    let out = modgate_go_gen::bindings_dir();
    let files = modgate_go_gen::generate()?;
    modgate_go_gen::write(&out, &files)?;
    println!("wrote {} files under {}", files.len(), out.display());
    Ok(())
}
