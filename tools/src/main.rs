use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tinyrnn_cli::cmd;

/// tinyrnn host tool: import trained recurrent networks, quantize them into blobs for the
/// `tinyrnn` runtime, and inspect, run and evaluate blobs exactly as the MCU does.
#[derive(Parser)]
#[command(name = "tinyrnn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Calibrate and quantize an ONNX/safetensors/.keras model into a blob (int8, int16,
    /// float32).
    Quantize(cmd::quantize::Args),
    /// Show layers, dims, parameter count, formats, flash and RAM of an ONNX, safetensors,
    /// .keras or blob file; for a blob also the tinyrnn cargo features firmware needs to run it
    /// (`features: lstm, int8`).
    Inspect(cmd::inspect::Args),
    /// Run a model over .npy sequences: float reference for ONNX/safetensors/.keras, the MCU's
    /// exact code path for a blob.
    Run(cmd::run::Args),
    /// Accuracy and confusion matrix on labelled .npy data, optionally against a reference
    /// model.
    Eval(cmd::eval::Args),
    /// One-to-many: prime with a sequence, then feed each output back as the next input.
    Generate(cmd::generate::Args),
    /// Emit a Rust module for firmware: dims as consts, capacity types, the blob as an
    /// aligned static, and a comment naming the tinyrnn cargo features the blob needs.
    Codegen(cmd::codegen::Args),
    /// Create an Ed25519 key pair for signing blobs: KEY (private, mode 0600, never
    /// printed) and KEY.pub.
    Keygen(cmd::keygen::Args),
    /// Wrap a blob in a signed envelope with a model version (anti-rollback).
    Sign(cmd::sign::Args),
    /// Check a signed blob as firmware does (trusted keys, signature, minimum version).
    Verify(cmd::verify::Args),
}

fn dispatch(cmd: &Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Quantize(a) => cmd::quantize::run(a),
        Cmd::Inspect(a) => cmd::inspect::run(a),
        Cmd::Run(a) => cmd::run::run(a),
        Cmd::Eval(a) => cmd::eval::run(a),
        Cmd::Generate(a) => cmd::generate::run(a),
        Cmd::Codegen(a) => cmd::codegen::run(a),
        Cmd::Keygen(a) => cmd::keygen::run(a),
        Cmd::Sign(a) => cmd::sign::run(a),
        Cmd::Verify(a) => cmd::verify::run(a),
    }
}

fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one `error:` line and status 1.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error (please report): {}{loc}",
            msg.replace('\n', " ")
        );
    }));
    let cli = Cli::parse();
    let res = std::panic::catch_unwind(|| dispatch(&cli.cmd));
    match res {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}
