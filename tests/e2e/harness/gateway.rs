//! The gateway under test: in process (`Gateway::start`) or as the built
//! binary (`Binary`), always on 127.0.0.1 port 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::client::Client;
use super::within;

pub struct Gateway {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    /// The config file; writing it triggers a reload.
    pub file: PathBuf,
    /// Holds the config file (and any store) until the gateway is dropped.
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    /// Starts the gateway with `yaml` (its `listen` is replaced by 127.0.0.1:0).
    /// Bound before this returns, so it is ready.
    pub async fn start(yaml: impl std::fmt::Display) -> Gateway {
        Gateway::start_in(tempfile::tempdir().unwrap(), yaml).await
    }

    /// Like `start`, in a folder the test prepared (certificates, say).
    pub async fn start_in(dir: tempfile::TempDir, yaml: impl std::fmt::Display) -> Gateway {
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, with_ephemeral_listen(&yaml.to_string())).unwrap();
        let loaded =
            gateway::load::load(&file).unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let listeners = gateway::Listeners::bind(&loaded.config).unwrap();
        let addr = listeners.plain_addr().unwrap();
        let (tls_addr, admin_addr) = (listeners.tls_addr(), listeners.admin_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = gateway::start(loaded, listeners).await.unwrap();
        tokio::spawn(running.serve_until(async {
            let _ = stopped.await;
        }));
        Gateway {
            addr,
            tls_addr,
            admin_addr,
            file,
            _dir: dir,
            stop: Some(stop),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// The admin listener's client (the config must have `admin:`).
    pub fn admin(&self) -> Client {
        Client::new(self.admin_addr.expect("no admin listener"))
    }

    /// Replaces the config file in one step (write beside, rename), as
    /// deploy tools do; the running gateway notices and reloads.
    pub fn write_config(&self, yaml: impl std::fmt::Display) {
        write_atomically(&self.file, &with_ephemeral_listen(&yaml.to_string()));
    }
}

pub fn write_atomically(file: &Path, text: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Replaces (or adds) the top-level `listen:` with an ephemeral port.
pub fn with_ephemeral_listen(yaml: &str) -> String {
    let body: Vec<&str> = yaml.lines().filter(|l| !l.starts_with("listen:")).collect();
    format!("listen: 127.0.0.1:0\n{}\n", body.join("\n"))
}

/// The built `gateway` binary, killed by PID on drop.
pub struct Binary {
    pub child: Child,
    /// The first listener the ready line names: plain if any, else TLS.
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    /// The folder holding the config (and any store); taken by `kill_hard`.
    dir: Option<tempfile::TempDir>,
    config: PathBuf,
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gateway"))
}

impl Binary {
    /// Runs `gateway serve` on a copy of `yaml` with a free port, waiting for
    /// the ready line (which names the bound address).
    pub async fn serve(yaml: impl std::fmt::Display) -> Binary {
        Binary::serve_env(yaml, &[]).await
    }

    /// `serve` with these environment variables set for the gateway
    /// process only (the test process's own environment is never changed:
    /// other tests read it from other threads).
    pub async fn serve_env(yaml: impl std::fmt::Display, env: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, with_ephemeral_listen(&yaml.to_string())).unwrap();
        Binary::spawn(&["serve"], &file, dir, env).await
    }

    /// Runs `gateway ARGS --config <copy of yaml>` (ARGS instead of `serve`),
    /// waiting for the ready line. A restart runs plain `serve`.
    pub async fn serve_args(args: &[&str], yaml: impl std::fmt::Display) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, with_ephemeral_listen(&yaml.to_string())).unwrap();
        Binary::spawn(args, &file, dir, &[]).await
    }

    pub async fn serve_file(file: &Path, dir: tempfile::TempDir) -> Binary {
        Binary::spawn(&["serve"], file, dir, &[]).await
    }

    async fn spawn(
        args: &[&str],
        file: &Path,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
    ) -> Binary {
        let mut child = Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(file)
            .env("GATEWAY_WORKERS", "2")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let ready_line = |text: &str| {
            text.lines()
                .find(|l| l.contains("gateway ready"))
                .map(str::to_string)
        };
        let came = within(Duration::from_secs(20), || {
            let text = stderr.lock().unwrap().clone();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("gateway exited with {status} before ready:\n{text}");
            }
            std::future::ready(ready_line(&text).is_some())
        })
        .await;
        let text = stderr.lock().unwrap().clone();
        assert!(came, "gateway not ready in time:\n{text}");
        let ready = ready_line(&text).unwrap();
        let tls_addr = listed(&ready, "https://");
        let admin_addr = listed(&ready, "admin=http://");
        let plain = [" http://", "\"http://", "listeners=http://"]
            .iter()
            .find_map(|p| listed(&ready, p));
        Binary {
            child,
            addr: plain.or(tls_addr).expect("a listener in the ready line"),
            tls_addr,
            admin_addr,
            dir: Some(dir),
            config: file.to_path_buf(),
            stdout,
            stderr,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// The config file it runs with (its folder also holds the store).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// SIGKILL (no chance to flush anything), then the same config again on
    /// a new port: what survives is what was durable.
    pub async fn kill_and_restart(mut self) -> Binary {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let dir = self.dir.take().unwrap();
        Binary::serve_file(&self.config.clone(), dir).await
    }

    /// SIGTERM (unless already stopped), then the same config again on a new port.
    pub async fn restart(mut self) -> Binary {
        if self.child.try_wait().unwrap().is_none() {
            assert!(self.terminate().success());
        }
        let dir = self.dir.take().unwrap();
        Binary::serve_file(&self.config.clone(), dir).await
    }

    /// Runs `gateway ARGS --config <this config>` to completion: (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_stdin(args, "")
    }

    /// `cli` with `input` on standard input.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> (i32, String, String) {
        use std::io::Write;
        let mut child = Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal (`TERM`, `HUP`, ...) by PID.
    pub fn signal(&self, name: &str) {
        let sent = Command::new(super::tools::installed("kill", "procps"))
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Waits for the exit status (at most 20 s).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "gateway did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status (at most 20 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Waits until stderr has a line containing `what`, returning that line.
    pub async fn wait_log(&self, what: &str) -> String {
        self.wait_line(what, Self::stderr).await
    }

    /// The same on stdout (the access log).
    pub async fn wait_log_stdout(&self, what: &str) -> String {
        self.wait_line(what, Self::stdout).await
    }

    async fn wait_line(&self, what: &str, text: fn(&Binary) -> String) -> String {
        let line = || {
            text(self)
                .lines()
                .find(|l| l.contains(what))
                .map(str::to_string)
        };
        let came = within(Duration::from_secs(20), || {
            std::future::ready(line().is_some())
        })
        .await;
        assert!(came, "no log line with {what:?} in:\n{}", text(self));
        line().unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address after `prefix` in the ready line's listener list.
fn listed(line: &str, prefix: &str) -> Option<SocketAddr> {
    let start = line.find(prefix)? + prefix.len();
    let rest = &line[start..];
    let end = rest.find(['"', ' ', ',']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn collect(mut r: impl std::io::Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}
