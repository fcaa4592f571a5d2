//! Progress output: a bar on a terminal, plain lines otherwise (both on stderr).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The longest wait between two plain progress lines.
const PLAIN_LINE_EVERY: Duration = Duration::from_secs(60);

/// Progress of long work.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line_pct: Option<u64>,
    last_line_at: Instant,
    total: u64,
    plain_lines: bool,
}

impl Progress {
    /// A progress display for `total` units of work.
    pub fn new(total: u64, what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what.to_string());
            bar
        });
        Self {
            bar,
            last_line_pct: None,
            last_line_at: Instant::now(),
            total: total.max(1),
            plain_lines: true,
        }
    }

    /// A progress bar on a terminal, and nothing otherwise (for work that often ends in an
    /// error, whose message must stay the only line).
    pub fn bar_only(total: u64, what: &str) -> Self {
        Self {
            plain_lines: false,
            ..Self::new(total, what)
        }
    }

    /// Sets the position and a message.
    pub fn update(&mut self, pos: u64, msg: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(pos);
                bar.set_message(msg.to_string());
            }
            None if !self.plain_lines => {}
            None => {
                // Plain lines: one per 5% of the work, and one a minute in between, so a
                // long run's log shows it is alive.
                let pct = pos * 100 / self.total;
                let due = self.last_line_at.elapsed() >= PLAIN_LINE_EVERY;
                if self
                    .last_line_pct
                    .is_none_or(|last| pct >= last + 5 || pos == self.total || due)
                {
                    self.last_line_pct = Some(pct);
                    self.last_line_at = Instant::now();
                    eprintln!("[{pct:3}%] {pos}/{} {msg}", self.total);
                }
            }
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
