//! sparsecaps: the desktop app, or the CLI when a subcommand is given.

use std::process::ExitCode;

/// mimalloc keeps freed blocks for reuse instead of returning every large tensor buffer to
/// the OS; with glibc's allocator each training step page-faults its buffers in again.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    for (key, value) in sparsecaps::device::environment_defaults(|k| std::env::var_os(k)) {
        // SAFETY: the first thing `main` does; no other thread exists yet that could read
        // the environment while it changes.
        unsafe { std::env::set_var(key, value) };
    }
    sparsecaps::cli::main(sparsecaps::app::run)
}
