//! The gateway.yaml loader: any text gives a config or positioned errors,
//! never a panic, and the same text always gives the same answer.
//!
//! Input: the config text (invalid UTF-8 is replaced, as the loader only
//! takes `&str`). `parse` does no I/O (the loading step, `gateway::load`,
//! reads the files a config names), so no input reaches the file system.
#![no_main]

use std::path::Path;

use gateway::config::{parse, Config, ConfigErrors};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "/nonexistent-gateway-fuzz/conf/gateway.yaml";

/// A fixed environment for `${VAR}` interpolation.
fn env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("4000".into()),
        "HOST" => Some("127.0.0.1".into()),
        "JWT_ACCESS_SECRET" => Some("a".repeat(32)),
        "JWT_REFRESH_SECRET" => Some("b".repeat(32)),
        "SHORT" => Some("x".into()),
        "EMPTY" => Some(String::new()),
        "NESTED" => Some("${PORT}".into()),
        _ => None,
    }
}

fn check(text: &str, result: &Result<Config, ConfigErrors>) {
    match result {
        Ok(config) => {
            // What `check` and start-up read from every valid config.
            let _ = config.listener_count();
            assert!(
                config.listen.is_some() || config.tls.is_some(),
                "a valid config has a listener"
            );
            assert!(!config.routes.is_empty(), "a valid config has a route");
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "Err without errors for {text:?}");
            for e in &errors.errors {
                assert!(
                    e.pos.line >= 1 && e.pos.col >= 1,
                    "error {e:?} has no position for {text:?}"
                );
            }
            let _ = errors.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first = parse(&text, Path::new(FILE), &env);
    check(&text, &first);
    // Determinism: the same text, parsed again, gives the same outcome.
    let second = parse(&text, Path::new(FILE), &env);
    assert_eq!(
        first.is_ok(),
        second.is_ok(),
        "parse is not deterministic for {text:?}"
    );
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "parse is not deterministic for {text:?}"
    );
});
