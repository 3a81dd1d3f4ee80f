//! The `ferrox` command: run the engine, or inspect its write-ahead log.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferrox::{
    backup,
    clock::SystemClock,
    config::{self, Config, LogFormat},
    ids::OsIds,
    logs, server, wal_tool,
};

// The engine allocates small objects on several threads at once; mimalloc
// cut allocator time well below glibc's in the load test's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ferrox", version, about = "A durable message engine for healthcare integration")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Serve {
        /// Configuration file (TOML); defaults apply when absent. FERROX_<KEY>
        /// variables override it (docs/configuration.md).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (host:port), overriding the file and the
        /// environment.
        #[arg(long)]
        listen: Option<String>,
        /// Data directory, overriding the file and the environment.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve jq transforms on stdin and stdout for a running engine (the
    /// engine starts these itself).
    #[command(hide = true)]
    TransformWorker {
        /// The engine's process ID: the worker ends when it is gone.
        #[arg(long)]
        parent: Option<u32>,
        /// Memory the worker may map, in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
    },
    /// Crash-test an engine: real receivers and senders, SIGKILL at random
    /// moments, restarts; checks that nothing acknowledged is lost or
    /// reordered. Exits non-zero if anything is.
    Torture {
        /// Kills before the final drain and check.
        #[arg(long, default_value_t = 100)]
        kills: u32,
        /// The seed of the run's randomness; a random one when absent.
        #[arg(long)]
        seed: Option<u64>,
        /// Concurrent senders.
        #[arg(long, default_value_t = 8)]
        senders: usize,
        /// The ferrox executable to torture; this one by default.
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Where to keep the data directory and the engine's log; a
        /// temporary directory by default.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Copy the journal of a data directory, consistently, while the
    /// engine runs on it or not; the copy starts as a data directory.
    Backup {
        /// Where the copy goes: a new or empty directory.
        target: PathBuf,
        /// The data directory to copy.
        #[arg(long, conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// The engine's configuration file, whose data directory is copied.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Inspect the write-ahead log offline.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Check every record of the log and report the first damage, if any.
    Verify { data_dir: PathBuf },
    /// Print the records of the log.
    Dump {
        data_dir: PathBuf,
        /// First sequence number to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most records to print.
        #[arg(long)]
        limit: Option<u64>,
        /// One JSON object per line, with the fields of the text lines.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The torture's own servers would chatter at info; the engine under it
    // logs to a file of its own. `serve` sets up its logs once it has read
    // the configuration, which says their format.
    match cli.command {
        Command::Serve { .. } => {}
        Command::Torture { .. } => logs::init(LogFormat::Text, "warn"),
        _ => logs::init(LogFormat::Text, "info"),
    }
    let result = match cli.command {
        Command::Serve { config, listen, data_dir } => serve(config, listen, data_dir),
        Command::TransformWorker { parent, memory_mb } => {
            ferrox::jq::worker_main(parent, memory_mb).context("serving transforms")
        }
        Command::Torture { kills, seed, senders, binary, dir } => torture(kills, seed, senders, binary, dir),
        Command::Wal { command: WalCommand::Verify { data_dir } } => {
            wal_tool::verify(&data_dir, &mut std::io::stdout())
        }
        Command::Wal { command: WalCommand::Dump { data_dir, from, limit, json } } => {
            let format = if json { wal_tool::DumpFormat::Json } else { wal_tool::DumpFormat::Text };
            wal_tool::dump(&data_dir, from, limit, format, &mut std::io::stdout())
        }
        Command::Backup { target, data_dir, config } => backup::data_dir_of(data_dir, config.as_deref())
            .and_then(|data_dir| backup::backup(&data_dir, &target, &mut std::io::stdout())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, listen: Option<String>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    // The file, the FERROX_ variables over it, the command line over both.
    let mut config = Config::load(config.as_deref(), std::env::vars_os()).map_err(anyhow::Error::msg)?;
    if let Some(listen) = listen {
        config.listen = config::resolve_listen(&listen).map_err(|e| anyhow::anyhow!("--listen: {e}"))?;
    }
    config.data_dir = data_dir.unwrap_or(config.data_dir);
    logs::init(config.log_format, "info");
    actix_web::rt::System::new().block_on(async move {
        let running = server::start(config, Arc::new(SystemClock), Arc::new(OsIds::default())).await?;
        for addr in &running.addrs {
            // Tests and scripts read this line to find an OS-chosen port.
            #[allow(clippy::print_stdout)]
            {
                println!("ferrox listening on {}://{addr}", running.scheme);
            }
        }
        running.serve().await
    })
}

fn torture(
    kills: u32,
    seed: Option<u64>,
    senders: usize,
    binary: Option<PathBuf>,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    use ferrox::ids::IdSource as _;
    let seed = seed.unwrap_or_else(|| u64::from_le_bytes(OsIds::default().bytes(8).try_into().unwrap_or([7; 8])));
    let binary = match binary {
        Some(binary) => binary,
        None => std::env::current_exe().context("finding this executable")?,
    };
    let options = ferrox::torture::Options { kills, seed, senders: senders.max(1), binary, dir };
    let findings = ferrox::torture::run(&options, &mut std::io::stdout())?;
    if !findings.ok(ferrox::torture::resend_bound()) {
        anyhow::bail!(
            "the torture found failures (seed {seed}): lost {:?}, reordered {:?}, repeats under another webhook-id {:?}",
            findings.lost.iter().take(10).collect::<Vec<_>>(),
            findings.reordered.iter().take(10).collect::<Vec<_>>(),
            findings.foreign_repeats.iter().take(10).collect::<Vec<_>>()
        );
    }
    Ok(())
}
