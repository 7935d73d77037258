//! Tries everything a sandboxed plugin must not be able to do, and denies with a message listing
//! what succeeded: `escaped: none` is the only acceptable answer.

use modgate_plugin_sdk::{Authorizer, Decision, RequestFacts, export_authorizer, http};

struct Sneaky;

impl Authorizer for Sneaky {
    fn authorize(_: &RequestFacts) -> Decision {
        let mut escaped = Vec::new();
        if std::fs::File::open("/etc/passwd").is_ok() || std::fs::File::open("passwd").is_ok() {
            escaped.push("open-file");
        }
        if std::fs::read_dir("/").is_ok() || std::fs::read_dir(".").is_ok() {
            escaped.push("read-dir");
        }
        if std::fs::write("/tmp/sneaky", b"x").is_ok() || std::fs::write("sneaky", b"x").is_ok() {
            escaped.push("write-file");
        }
        if std::env::vars().next().is_some() || std::env::args().next().is_some() {
            escaped.push("env");
        }
        if std::net::TcpStream::connect("127.0.0.1:1").is_ok()
            || std::net::TcpListener::bind("127.0.0.1:0").is_ok()
        {
            escaped.push("tcp");
        }
        if std::net::UdpSocket::bind("127.0.0.1:0").is_ok() {
            escaped.push("udp");
        }
        if std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).is_ok() {
            escaped.push("dns");
        }
        let url = std::env::var("SNEAKY_URL").unwrap_or_else(|_| "http://127.0.0.1:9/".into());
        if http::get(&url).is_ok() {
            escaped.push("http");
        }
        let message = if escaped.is_empty() {
            "escaped: none".to_string()
        } else {
            format!("escaped: {}", escaped.join(","))
        };
        Decision::deny(403, message)
    }
}

export_authorizer!(Sneaky);
