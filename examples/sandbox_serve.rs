//! Runs the sandbox by hand until `flexsync sandbox serve` exists:
//!
//! `cargo run --example sandbox_serve -- [--listen 127.0.0.1:8787] [--state FILE] [--seed FILE] [--admin-endpoints]`
//!
//! Stop it with Ctrl-C; every change is already in the state file.

use std::path::PathBuf;

use clap::Parser;
use flexsync::sandbox::{Sandbox, SandboxConfig, Seed, serve};

#[derive(Parser)]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: String,
    /// State file; created from the seed when missing. Without it, state is in memory.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Seed YAML; the bundled seed when omitted.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Mount the `/_sandbox/` admin endpoints.
    #[arg(long)]
    admin_endpoints: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => Seed::from_file(path)?,
        None => Seed::bundled()?,
    };
    let config = SandboxConfig {
        admin_endpoints: args.admin_endpoints,
        ..SandboxConfig::default()
    };
    let sandbox = match &args.state {
        Some(path) => Sandbox::open(path, &seed, config)?,
        None => Sandbox::new(&seed, config),
    };
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("sandbox listening on http://{}", listener.local_addr()?);
    serve(listener, sandbox, std::future::pending()).await?;
    Ok(())
}
