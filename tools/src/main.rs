use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tinyrnn host tool: import trained recurrent networks, quantize them into blobs for the
/// `tinyrnn` runtime, and inspect, run and evaluate blobs exactly as the MCU does.
#[derive(Parser)]
#[command(name = "tinyrnn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res: anyhow::Result<()> = match cli.cmd {};
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
