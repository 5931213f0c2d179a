//! `idv`, the one binary: `idv serve` runs the server; every other command is
//! an HTTP client of the admin API (`IDV_ADDR`, `IDV_TOKEN`), like Vault's.

pub mod cli;
pub mod client;
mod commands;
pub mod output;
mod serve;
pub mod verify;

use std::process::ExitCode;

use clap::Parser as _;

/// Parses the command line, runs the command and turns an error into one
/// line on standard error and exit status 1.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`idv … | head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
