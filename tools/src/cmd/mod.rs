//! One module per subcommand. Each exposes `Args` (clap) and `run(&Args) -> anyhow::Result<()>`.

pub mod eval;
pub mod inspect;
pub mod quantize;
pub mod run;
pub mod generate;
pub mod codegen;
