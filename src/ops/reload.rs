//! Reload (docs/operations.md): on SIGHUP, and when the config file or the TLS
//! certificate or key changes on disk (debounced, since editors and deploy
//! tools write in several steps), the file is loaded and validated and a
//! whole new state built off the runtime; only then is it swapped in, so
//! requests in flight finish on the state they started with and no
//! connection notices. Any error keeps the running state and is logged as
//! `PATH:LINE:COLUMN: message`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::load;
use crate::proxy::state::{Boot, Gateway, GatewayState};
use crate::telemetry::logging;

/// Quiet time after the last change on disk before reloading.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The files whose change triggers a reload: the config, and the TLS
/// certificate and key it names.
pub fn watched_files(config: &Config) -> Vec<PathBuf> {
    let mut files = vec![config.file.clone()];
    if let Some(t) = &config.tls {
        files.extend([t.cert.path.clone(), t.key.path.clone()]);
    }
    files
}

/// Starts watching `files` and SIGHUP at once, so no change made after
/// start-up is missed, and returns the task that reloads on them until shutdown.
pub fn watch(
    gw: Arc<Gateway>,
    files: &[PathBuf],
    shutdown: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    let hup = signal(SignalKind::hangup())
        .inspect_err(
            |e| tracing::warn!(error = %e, "cannot handle SIGHUP; reload on file change only"),
        )
        .ok();
    let (tx, changed) = mpsc::unbounded_channel();
    let mut disk = Disk::new(tx);
    disk.follow(files);
    reload_on_events(gw, disk, hup, changed, shutdown)
}

async fn reload_on_events(
    gw: Arc<Gateway>,
    mut disk: Disk,
    mut hup: Option<tokio::signal::unix::Signal>,
    mut changed: mpsc::UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            Some(()) = hangup(&mut hup) => tracing::info!("SIGHUP: reloading the config"),
            Some(()) = changed.recv() => {
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changed.recv()).await {}
                tracing::info!("config or certificate changed on disk: reloading");
            }
            _ = shutdown.changed() => return,
        }
        if let Some(files) = reload(&gw).await {
            disk.follow(&files);
        }
    }
}

async fn hangup(hup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Loads, validates, builds and swaps in the file's current contents.
/// Returns the files to watch from now on, or `None` when the running
/// config stays.
pub async fn reload(gw: &Arc<Gateway>) -> Option<Vec<PathBuf>> {
    let g = gw.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&g)).await;
    let errors = match prepared {
        Ok(Ok(next)) => {
            let routes = next.state.routes.configured();
            gw.state.store(Arc::new(next.state));
            if let (Some(slot), Some(cert)) = (&gw.cert, next.cert) {
                slot.replace(cert);
            }
            let current = gw.state.load();
            gw.upstreams.set_idle_timeout(current.limits.idle_timeout);
            logging::set_format(current.log.format);
            gw.metrics.reload(true);
            tracing::info!(routes, "config reloaded");
            return Some(next.files);
        }
        Ok(Err(errors)) => errors,
        Err(e) => vec![format!("building the new config failed: {e}")],
    };
    gw.metrics.reload(false);
    for e in &errors {
        tracing::error!("{e}");
    }
    tracing::error!(
        errors = errors.len(),
        "config reload failed; the running config stays"
    );
    None
}

struct Prepared {
    state: GatewayState,
    cert: Option<Arc<rustls::sign::CertifiedKey>>,
    files: Vec<PathBuf>,
}

/// Everything that can fail, done before anything is swapped. Blocking.
fn prepare(gw: &Gateway) -> Result<Prepared, Vec<String>> {
    // The same loading step as `check` and start-up: the config, its
    // certificate and key files, each error positioned.
    let mut loaded = load::load(&gw.boot.file)
        .map_err(|e| e.to_string().lines().map(String::from).collect::<Vec<_>>())?;
    let config = &mut loaded.config;
    for key in gw.boot.needs_restart(&Boot::of(config)) {
        tracing::warn!(
            key,
            "{}: `{key}` changed; the running value stays until the gateway is restarted",
            gw.boot.file.display()
        );
    }
    config.log.format = logging::effective(config.log.format);
    let previous = gw.state.load();
    let state = GatewayState::build(&loaded, gw.users.as_ref(), &gw.metrics, Some(&previous))
        .map_err(|e| vec![format!("{}: {e}", gw.boot.file.display())])?;
    Ok(Prepared {
        state,
        // Served only when the HTTPS listener runs (it is bound at start).
        cert: loaded.cert.filter(|_| gw.cert.is_some()),
        files: watched_files(&loaded.config),
    })
}

/// inotify watches on the folders holding the watched files (editors and
/// deploy tools replace files by renaming, which a watch on the file itself
/// would lose), filtered down to those files' names.
struct Disk {
    watcher: Option<RecommendedWatcher>,
    files: Arc<Mutex<BTreeSet<PathBuf>>>,
    folders: BTreeSet<PathBuf>,
}

impl Disk {
    fn new(tx: mpsc::UnboundedSender<()>) -> Disk {
        let files: Arc<Mutex<BTreeSet<PathBuf>>> = Arc::default();
        let wanted = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let wanted = wanted.lock().unwrap_or_else(|p| p.into_inner());
            if changes_content(&event.kind) && event.paths.iter().any(|p| wanted.contains(p)) {
                let _ = tx.send(());
            }
        })
        .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the config on disk; reload on SIGHUP only"))
        .ok();
        Disk {
            watcher,
            files,
            folders: BTreeSet::new(),
        }
    }

    /// Watches exactly `files` from now on.
    fn follow(&mut self, files: &[PathBuf]) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let files: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let folders: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for gone in self.folders.difference(&folders) {
            let _ = watcher.unwatch(gone);
        }
        for new in folders.difference(&self.folders) {
            if let Err(e) = watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %new.display(), error = %e, "cannot watch folder for changes");
            }
        }
        self.folders = folders;
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = files;
    }
}

/// Writes, creations, renames and removals; not reads (our own reload reads
/// the file) and not metadata (reading may touch the access time).
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
