//! One module per subcommand. Each exposes `Args` (clap) and `run(&Args) -> anyhow::Result<()>`.

pub mod inspect;
pub mod run;
