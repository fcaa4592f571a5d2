//! The command-line interface: parsing, dispatch and one-line errors (exit code 2).

pub mod args;
pub mod bench;
pub mod common;
pub mod eval;
pub mod inspect;
pub mod layers;
pub mod plot;
pub mod progress;
pub mod prune;
pub mod replot;
pub mod run_chart;
pub mod sweep;
pub mod train;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

pub use args::{Cli, Commands};

/// Exit code of bad input and failed commands.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Folds a multi-line message into one line.
pub fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the command line and runs it. Without a subcommand, `open_app` is called.
pub fn main(open_app: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.to_string()));
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let result = match cli.command {
        None => open_app(),
        Some(Commands::Train(a)) => train::run(a),
        Some(Commands::Eval(a)) => eval::run(a),
        Some(Commands::Bench(a)) => bench::run(a),
        Some(Commands::Prune(a)) => prune::run_prune(a),
        Some(Commands::Export(a)) => prune::run_export(a),
        Some(Commands::Inspect(a)) => inspect::run(a),
        Some(Commands::Sweep(a)) => sweep::run(a),
        Some(Commands::Plot(a)) => replot::run(a),
        Some(Commands::Layers(a)) => layers::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&crate::errors::error_chain(&e)));
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
