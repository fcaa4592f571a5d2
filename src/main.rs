//! sparsecaps: the desktop app, or the CLI when a subcommand is given.

use std::process::ExitCode;

fn main() -> ExitCode {
    sparsecaps::cli::main(sparsecaps::app::run)
}
