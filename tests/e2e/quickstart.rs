//! The README's quickstart, run as written against the built binary, so the
//! front page cannot drift from the product. The block between the
//! `quickstart:begin` and `quickstart:end` markers runs in bash in a temp
//! folder holding the shipped gateway.yaml; three lines of it are set for
//! the test (the build, which cargo has done; the binary's path; the port,
//! free one chosen here), each required to be there as written. Every `#>`
//! line must be printed, in order, and nothing else on stdout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::gateway::bin;
use crate::harness::tools::installed;

const BUILD_LINE: &str =
    "cargo build --release                  # the first build takes a few minutes";
const BINARY_LINE: &str = "GATEWAY=target/release/gateway";
const BASE_LINE: &str = "BASE=http://127.0.0.1:3000";
const SHIPPED_LISTEN: &str = "listen: 127.0.0.1:3000";

/// The shell block of the README's quickstart.
fn quickstart_block(readme: &str) -> String {
    let begin = readme
        .find("<!-- quickstart:begin -->")
        .expect("README.md has a quickstart:begin marker");
    let end = readme[begin..]
        .find("<!-- quickstart:end -->")
        .expect("README.md has a quickstart:end marker")
        + begin;
    let inner = &readme[begin..end];
    let open = inner
        .find("```sh\n")
        .expect("the quickstart is a ```sh block")
        + 6;
    let close = inner[open..].find("```").expect("the block is closed") + open;
    inner[open..close].to_string()
}

/// `text` with the line `from` replaced by `to`; the line must be there.
fn replace_line(text: &str, from: &str, to: &str) -> String {
    let mut found = false;
    let out: Vec<&str> = text
        .lines()
        .map(|l| {
            if l == from {
                found = true;
                to
            } else {
                l
            }
        })
        .collect();
    assert!(found, "the quickstart no longer has the line {from:?}");
    out.join("\n") + "\n"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    installed("curl", "curl");
    installed("jq", "jq");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = quickstart_block(&readme);
    let expected: Vec<String> = block
        .lines()
        .filter_map(|l| l.strip_prefix("#> "))
        .map(str::to_string)
        .collect();
    assert!(expected.len() >= 5, "the quickstart shows its outputs");

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipped = std::fs::read_to_string(root.join("gateway.yaml")).unwrap();
    let config = replace_line(
        &shipped,
        SHIPPED_LISTEN,
        &format!("listen: 127.0.0.1:{port}"),
    );
    std::fs::write(dir.path().join("gateway.yaml"), config).unwrap();
    let script = replace_line(&block, BUILD_LINE, "");
    let script = replace_line(
        &script,
        BINARY_LINE,
        &format!("GATEWAY={}", bin().display()),
    );
    let script = replace_line(&script, BASE_LINE, &format!("BASE=http://127.0.0.1:{port}"));

    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The script waits for the gateway itself; bound the whole run.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the quickstart did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = stdout.lines().collect();
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
    assert_eq!(
        got,
        expected,
        "the quickstart printed other lines than the README shows\nstderr:\n{}\ngateway.log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the script failed: {:?}", out.status);
    assert!(
        dir.path().join("data/users.redb").exists(),
        "the store is where the README says (data/ beside gateway.yaml)"
    );
}
