//! The `gateway` binary: parse the command line, load the config (and the
//! files it names), bind, and hand over to `gateway::run`. Exit codes: 0
//! ok, 1 failure, 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use gateway::admin::cli::{self as users_cli, UsersCommand};
use gateway::config::LogFormat;
use gateway::load::{self, Loaded};
use gateway::Listeners;

// glibc malloc showed up as ~8% of CPU per proxied request (malloc, free,
// consolidation); mimalloc's thread-local free lists cut most of it. Its
// `no_thp` build feature keeps the arena off transparent huge pages, which
// otherwise made 8 MiB resident at idle (peak RSS 34 -> 22 MiB at 256 clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "A self-hosted API gateway with built-in sign-up, sign-in and a JWT authorizer"
)]
struct Cli {
    /// Config file [default: $GATEWAY_CONFIG, else ./gateway.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// With no subcommand the gateway serves, so `serve`'s flags are
    /// accepted before it too (`gateway --log-format pretty`).
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The flags of `serve` only: `check` and `users` log nothing.
#[derive(Args)]
struct ServeArgs {
    /// Log format of `serve`, overriding `log.format`
    #[arg(long, value_enum)]
    log_format: Option<Format>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT (the default)
    Serve(ServeArgs),
    /// Validate the config and every file it references
    Check,
    /// Manage users: in the store, or through the running gateway's admin API
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Pretty,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config.clone().unwrap_or_else(load::default_path);
    let command = match (cli.command, cli.serve) {
        (None, args) => Command::Serve(args),
        (Some(Command::Serve(named)), before) => Command::Serve(ServeArgs {
            log_format: named.log_format.or(before.log_format),
        }),
        (
            Some(_),
            ServeArgs {
                log_format: Some(_),
            },
        ) => {
            usage_error("--log-format is a flag of `serve` only; `check` and `users` write no logs")
        }
        (Some(other), ServeArgs { log_format: None }) => other,
    };
    match command {
        Command::Check => check(&path),
        Command::Serve(args) => serve(&path, args.log_format),
        Command::Users { command } => users(&path, command),
    }
}

/// Exits 2 with clap's usage error layout: what clap's own checks cannot
/// say (`args_conflicts_with_subcommands` would refuse `--config` too).
fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// The one loading step (`check`, `serve` and reload share it); errors
/// are printed, positioned.
fn load(path: &std::path::Path) -> Result<Loaded, ExitCode> {
    load::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(1)
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    match load(path) {
        Ok(Loaded { config: c, .. }) => {
            println!(
                "ok: {}, {}",
                counted(c.routes.len(), "route", "routes"),
                counted(c.listener_count(), "listener", "listeners")
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `1 route`, `3 routes`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn users(path: &std::path::Path, command: UsersCommand) -> ExitCode {
    let config = match load(path) {
        Ok(loaded) => loaded.config,
        Err(code) => return code,
    };
    let Some(auth) = config.auth.clone() else {
        eprintln!(
            "error: {} has no `auth` section, so there is no user store",
            path.display()
        );
        return ExitCode::from(1);
    };
    let ran = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(users_cli::run(&config, &auth, command))
                .map_err(|e| e.to_string())
        });
    match ran {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(path: &std::path::Path, log_format: Option<Format>) -> ExitCode {
    let mut loaded = match load(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let forced = log_format.map(|f| match f {
        Format::Json => LogFormat::Json,
        Format::Pretty => LogFormat::Pretty,
    });
    let log = &mut loaded.config.log;
    gateway::telemetry::logging::init(log.format, forced);
    log.format = gateway::telemetry::logging::effective(log.format);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Before binding: once the port accepts, a SIGTERM or SIGINT must drain
    // and exit 0, not kill the process with the default action.
    let installed = {
        let _context = runtime.enter();
        shutdown_signal()
    };
    let shutdown = match installed {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install the SIGTERM and SIGINT handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let listeners = match Listeners::bind(&loaded.config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let served = runtime.block_on(gateway::run(loaded, listeners, shutdown));
    // A hash or store write still running on a blocking thread must not hold
    // the exit past the drain.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Worker threads: `GATEWAY_WORKERS`, else one per available core. With one
/// worker a current-thread runtime avoids cross-thread wake-ups.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("GATEWAY_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|w| *w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match workers {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

/// Installs the SIGTERM and SIGINT handlers now (a signal delivered from
/// here on is kept for the future) and returns the future that completes on
/// the first of them. Needs the runtime's context.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
