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

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

pub use args::{Cli, Commands};

/// Exit code of bad input and failed commands.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Exit code of an internal failure (a panic; Rust's own code for one).
pub const EXIT_INTERNAL: u8 = 101;

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
    let Some(command) = cli.command else {
        return report(open_app());
    };
    one_line_panics();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match command {
        Commands::Train(a) => train::run(a),
        Commands::Eval(a) => eval::run(a),
        Commands::Bench(a) => bench::run(a),
        Commands::Prune(a) => prune::run_prune(a),
        Commands::Export(a) => prune::run_export(a),
        Commands::Inspect(a) => inspect::run(a),
        Commands::Sweep(a) => sweep::run(a),
        Commands::Plot(a) => replot::run(a),
        Commands::Layers(a) => layers::run(a),
    }));
    match run {
        Ok(result) => report(result),
        Err(_) => {
            let line = LAST_PANIC
                .lock()
                .ok()
                .and_then(|mut p| p.take())
                .unwrap_or_else(|| "internal error".into());
            let _ = writeln!(std::io::stderr(), "error: {line}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

/// A command's result as its exit code, the error printed as one line: a worker thread's
/// panic is an internal error, anything else bad input or a failed command.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&crate::errors::error_chain(&e)));
            let panicked = matches!(
                e.downcast_ref::<crate::train::messages::TrainError>(),
                Some(crate::train::messages::TrainError::Panicked(_))
            );
            ExitCode::from(if panicked { EXIT_INTERNAL } else { EXIT_BAD_INPUT })
        }
    }
}

/// The latest panic of a command, as the line [`main`] prints when the command panics.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Makes a panic that ends a command print one line (what failed and where) instead of
/// Rust's message and backtrace hint: the hook only records it, so panics that are caught
/// (the wgpu probe, the trainer thread, the runtime's own threads) print nothing. A device
/// that cannot allocate a buffer gets a hint. With `RUST_BACKTRACE` set (not 0), Rust's own
/// report is kept.
fn one_line_panics() {
    if std::env::var("RUST_BACKTRACE").is_ok_and(|v| v != "0") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let what = info.payload_as_str().unwrap_or("unknown cause");
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!(
            "internal error: {}{at}{}",
            panic_line(what),
            crate::errors::memory_hint(what)
        );
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(line);
        }
    }));
}

/// A panic message as one line: without a backtrace it may carry, at most 300 characters.
fn panic_line(message: &str) -> String {
    let before_trace = message
        .lines()
        .take_while(|l| !l.trim_start().to_ascii_lowercase().starts_with("backtrace"))
        .collect::<Vec<_>>()
        .join("\n");
    let line = one_line(&before_trace);
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_prints_one_short_line_without_its_backtrace() {
        let msg = "Buffer size exceeds the max available\nRequested 382205952\nBacktrace\n   0: cubecl::alloc\n   1: main";
        let line = panic_line(msg);
        assert_eq!(line, "Buffer size exceeds the max available Requested 382205952");
        assert!(panic_line(&"x".repeat(1000)).len() <= 303);
        assert!(!crate::errors::memory_hint("BufferTooBig { size: 382205952 }").is_empty());
        assert!(!crate::errors::memory_hint("Unable to allocate 3 GiB").is_empty());
        assert!(
            crate::errors::memory_hint("index out of bounds: the len is 3 but the index is 7").is_empty()
        );
    }
}
