//! The benchmark harness's own unit tests (`bench/modbench/test_*.py`: its CPU accounting),
//! run with the machine's python3 so that `cargo test` covers them too.

#[test]
fn bench_harness_unit_tests_pass() {
    let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench");
    let out = std::process::Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "modbench",
            "-t",
            ".",
            "-p",
            "test_*.py",
        ])
        .current_dir(&bench)
        .output()
        .expect("python3 runs bench/run; install it (Debian: python3)");
    assert!(
        out.status.success(),
        "bench harness unit tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Ran ") && !said.contains("Ran 0 tests"),
        "{said}"
    );
}
