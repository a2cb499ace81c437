//! One module per subcommand. Each exposes `Args` (clap) and `run(&Args) -> anyhow::Result<()>`.

pub mod codegen;
pub mod eval;
pub mod generate;
pub mod inspect;
pub mod keygen;
pub mod quantize;
pub mod run;
pub mod sign;
pub mod verify;
