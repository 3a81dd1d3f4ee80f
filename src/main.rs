//! The `ferrox` command: run the engine, or inspect its write-ahead log.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferrox::{clock::SystemClock, config::Config, ids::OsIds, server, wal_tool};
use tracing_subscriber::EnvFilter;

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
        /// Configuration file (TOML); defaults apply when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding the file.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory, overriding the file.
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
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Serve { config, listen, data_dir } => serve(config, listen, data_dir),
        Command::TransformWorker { parent, memory_mb } => {
            ferrox::jq::worker_main(parent, memory_mb).context("serving transforms")
        }
        Command::Wal { command: WalCommand::Verify { data_dir } } => {
            wal_tool::verify(&data_dir, &mut std::io::stdout())
        }
        Command::Wal { command: WalCommand::Dump { data_dir, from, limit } } => {
            wal_tool::dump(&data_dir, from, limit, &mut std::io::stdout())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, listen: Option<SocketAddr>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = match &config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let mut config = Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            config.origin = Some(path.clone());
            config
        }
        None => Config::default(),
    };
    config.listen = listen.unwrap_or(config.listen);
    config.data_dir = data_dir.unwrap_or(config.data_dir);
    actix_web::rt::System::new().block_on(async move {
        let running = server::start(config, Arc::new(SystemClock), Arc::new(OsIds::default())).await?;
        for addr in &running.addrs {
            // Tests and scripts read this line to find an OS-chosen port.
            #[allow(clippy::print_stdout)]
            {
                println!("ferrox listening on http://{addr}");
            }
        }
        running.server.await.context("serving HTTP")
    })
}
