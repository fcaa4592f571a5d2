//! sparsecaps: the desktop app, or the CLI when a subcommand is given.

use std::process::ExitCode;

/// mimalloc keeps freed blocks for reuse instead of returning every large tensor buffer to
/// the OS; with glibc's allocator each training step page-faults its buffers in again.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    sparsecaps::cli::main(sparsecaps::app::run)
}
