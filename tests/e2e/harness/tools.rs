//! External programs some tests need. A missing one is a failure that
//! names the Debian package to install, never a silent pass or skip;
//! `scripts/test` installs them all.

use std::path::{Path, PathBuf};

/// The path of `program` (a name looked up on `PATH`, or a path), or a
/// panic naming `package`, the Debian package that provides it.
pub fn installed(program: &str, package: &str) -> PathBuf {
    let found = if program.contains('/') {
        Some(PathBuf::from(program)).filter(|p| is_executable(p))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| is_executable(p))
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed: this test needs the Debian package `{package}` \
             (run scripts/test, which installs it, or apt-get install {package})"
        )
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `openssl ARGS` in `dir`, panicking with its stderr if it fails.
/// Returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(installed("openssl", "openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
