//! A real PostgreSQL server for the tests: a throwaway cluster (initdb) in
//! a temp folder, on a free loopback port. `shared()` is one server for the
//! whole test process, each test with a database of its own; `Postgres::start`
//! is a server of a test's own, for tests that stop it. As root the server
//! runs as the `postgres` user (initdb refuses root). Every server is stopped
//! by its PID and its folder removed: on drop, and for the shared one when
//! the test process exits (an `atexit` hook; if the process is killed
//! instead, the kernel stops the server through `setpriv --pdeathsig`, from
//! a thread that lives as long). Without the server binaries the tests fail
//! naming the Debian package.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::tools::installed;

/// Which store a parametrised test runs on (`on_both_stores!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

impl Backend {
    /// `auth.store` for a new, empty store: a redb file beside the config,
    /// or a new database on the shared server.
    pub fn store(self) -> String {
        match self {
            Backend::Redb => "data/users.redb".into(),
            Backend::Postgres => shared().database(),
        }
    }
}

/// Runs each named `async fn name(backend: Backend)` as two tests, in
/// modules `redb` and `postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Redb).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            )*
        }
    };
}

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_user: Option<String>,
    /// `-c` settings beyond the usual ones.
    extra: Vec<String>,
    child: Option<Child>,
    /// The cluster's folder, removed on drop (after the server stops).
    dir: Option<tempfile::TempDir>,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The shared server's process and folder, for `stop_shared` at exit.
static SHARED_SERVER: Mutex<Option<(Child, tempfile::TempDir)>> = Mutex::new(None);

extern "C" {
    fn atexit(hook: extern "C" fn()) -> std::os::raw::c_int;
}

/// Stops the shared server and removes its cluster: without this every
/// test process would leave hundreds of megabytes in the temp folder.
extern "C" fn stop_shared() {
    let taken = SHARED_SERVER.lock().ok().and_then(|mut s| s.take());
    if let Some((mut child, dir)) = taken {
        signal(child.id(), "QUIT");
        let _ = child.wait();
        drop(dir);
    }
}

/// The server every test without needs of its own shares.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Spawned from a thread that never ends, so the parent-death signal
        // comes when the process does, not when some test's thread ends.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut pg = Postgres::init();
            pg.launch();
            let server = (pg.child.take().unwrap(), pg.dir.take().unwrap());
            *SHARED_SERVER.lock().unwrap() = Some(server);
            // SAFETY: registers a plain function; libc runs it once, at exit.
            assert_eq!(unsafe { atexit(stop_shared) }, 0, "atexit");
            let _ = tx.send(pg);
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the shared PostgreSQL server started")
    })
}

impl Postgres {
    /// A server of the caller's own (stopped on drop).
    pub fn start() -> Postgres {
        let mut pg = Postgres::init();
        pg.launch();
        pg
    }

    /// A server of the caller's own that accepts TCP clients over TLS only,
    /// with a self-signed certificate for `localhost` (openssl).
    pub fn start_tls_only() -> Postgres {
        let mut pg = Postgres::init();
        let (cert, key) = (pg.data.join("server.crt"), pg.data.join("server.key"));
        let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
        super::tools::openssl(
            &pg.data,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
                key_arg,
                "-out",
                cert_arg,
            ],
        );
        let hba = pg.data.join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).unwrap();
        let tls_only: String = text
            .lines()
            .map(|l| match l.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&hba, tls_only).unwrap();
        pg.extra = vec![
            "ssl=on".into(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ];
        if let Some(user) = &pg.as_user {
            let chown = Command::new("chown")
                .args([&format!("{user}:{user}")])
                .arg(&cert)
                .arg(&key)
                .arg(&hba)
                .status()
                .unwrap();
            assert!(chown.success());
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        pg.launch_with(Some(&cert));
        pg
    }

    fn init() -> Postgres {
        let bin = server_bin();
        let as_user = is_root().then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("gateway-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        if as_user.is_some() {
            // The server's user must own its folder.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let mut initdb = command(&bin.join("initdb"), as_user.as_deref(), false);
        let out = initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Postgres {
            port: free_port(),
            bin,
            data,
            as_user,
            extra: Vec::new(),
            child: None,
            dir: Some(dir),
        }
    }

    /// Starts the server on its port and waits until it accepts queries.
    fn launch(&mut self) {
        self.launch_with(None)
    }

    /// `launch`; with a TLS-only server, readiness is asked over TLS.
    fn launch_with(&mut self, tls: Option<&Path>) {
        let socket_dir = self.data.parent().unwrap().to_path_buf();
        let mut cmd = command(&self.bin.join("postgres"), self.as_user.as_deref(), true);
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=400"])
            // The tests crash gateways, never this server: durability to
            // the server's memory is what they observe.
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for setting in &self.extra {
            cmd.args(["-c", setting]);
        }
        self.child = Some(cmd.spawn().expect("postgres starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let sslmode = if tls.is_some() { "require" } else { "prefer" };
        while psql_ssl(self.port, "postgres", "SELECT 1", sslmode).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited with {status} before accepting connections");
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new empty database; its URL.
    pub fn database(&self) -> String {
        let name = format!("g{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        psql(self.port, "postgres", &format!("CREATE DATABASE {name}")).unwrap();
        self.url(&name)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Fast shutdown (SIGINT to the server's PID), waiting for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "INT");
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running server");
        self.launch();
    }

    /// Runs one SQL statement on `db`; its output rows, `|`-separated.
    pub fn sql(&self, db: &str, statement: &str) -> String {
        psql(self.port, db, statement).unwrap_or_else(|e| panic!("{statement}: {e}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "QUIT");
            let _ = child.wait();
        }
    }
}

/// The database name of a URL from `database()`.
pub fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("postgres").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql: install the Debian package postgresql (scripts/test does)")
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `setpriv`: as the server's user when root, and with a parent-death
/// signal for the server so it never outlives the tests.
fn command(program: &Path, as_user: Option<&str>, pdeathsig: bool) -> Command {
    let mut cmd = Command::new(installed("setpriv", "util-linux"));
    if let Some(user) = as_user {
        cmd.args(["--reuid", user, "--regid", user, "--init-groups"]);
    }
    if pdeathsig {
        cmd.args(["--pdeathsig", "INT"]);
    }
    cmd.arg(program);
    cmd.current_dir("/");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

fn psql(port: u16, db: &str, statement: &str) -> Result<String, String> {
    psql_ssl(port, db, statement, "prefer")
}

fn psql_ssl(port: u16, db: &str, statement: &str, sslmode: &str) -> Result<String, String> {
    let out = Command::new(installed("psql", "postgresql-client"))
        .env("PGSSLMODE", sslmode)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
        ])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
    }
}
