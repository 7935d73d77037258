//! The `Authorization` header parser the first-party auth plugins share (`auth_core::credential`),
//! natively: any header value a client sends. Bearer tokens are one non-empty word; a Basic
//! credential is exactly the base64 the client sent (strict, canonical base64: re-encoding the
//! `user:password` gives the same text back).
#![no_main]

use auth_core::{Credential, credential};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use modgate_plugin_sdk::RequestFacts;

fuzz_target!(|value: &str| {
    let mut req = RequestFacts::example();
    req.headers.push(("Authorization".into(), value.into()));
    match credential(&req) {
        Ok(Some(Credential::Bearer(token))) => {
            assert!(
                !token.is_empty() && !token.contains(char::is_whitespace),
                "{token:?}"
            );
            assert!(value.contains(&token));
        }
        Ok(Some(Credential::Basic { user, password })) => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let (_, sent) = value
                .trim()
                .split_once(' ')
                .expect("a scheme and a credential");
            assert_eq!(encoded, sent.trim());
            assert!(!user.contains(':'));
        }
        Ok(None) => unreachable!("the header is present"),
        Err(_) => {}
    }
});
