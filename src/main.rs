//! sparsecaps: the desktop app, or the CLI when a subcommand is given.

use std::process::ExitCode;

/// mimalloc keeps freed blocks for reuse instead of returning every large tensor buffer to
/// the OS; with glibc's allocator each training step page-faults its buffers in again.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: its index in mimalloc v3's `mi_option_e` (the version
/// `libmimalloc-sys` builds by default; the test below checks the index by its default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before it goes back to the OS.
///
/// mimalloc's default (1,000 ms) is about one CPU training step, so a step's buffers were
/// often returned to the OS between two steps and page-faulted in again (the kernel zeroing
/// pages took 12% of a `resnet-caps` training run's samples). With 10 s a training loop
/// keeps its buffers, and an idle app still gives its memory back.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// mimalloc's environment variables for the purge delay (the second is its old name).
const PURGE_DELAY_ENV: [&str; 2] = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];

/// Whether the user chose a purge delay through mimalloc's environment.
fn delay_chosen() -> bool {
    PURGE_DELAY_ENV.iter().any(|key| std::env::var_os(key).is_some())
}

/// Sets [`PURGE_DELAY_MS`] unless the user chose a delay through mimalloc's environment.
fn keep_freed_memory_for_reuse() {
    if !delay_chosen() {
        // SAFETY: called first thing in `main`, before any other thread exists (mimalloc's
        // option setters are not thread-safe); the index is checked by a test.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn main() -> ExitCode {
    keep_freed_memory_for_reuse();
    for (key, value) in sparsecaps::device::environment_defaults(|k| std::env::var_os(k)) {
        // SAFETY: among the first things `main` does; no other thread exists yet that could
        // read the environment while it changes.
        unsafe { std::env::set_var(key, value) };
    }
    sparsecaps::cli::main(sparsecaps::app::run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if delay_chosen() {
            return; // the environment chose the value; the default cannot be seen
        }
        // SAFETY: reading an option; nothing in this test binary sets options
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // v3's documented default for purge_delay; the options around it default to 1
        // (a deprecated one) and 0 (use_numa_nodes)
        assert_eq!(delay, 1_000);
    }
}
