//! Progress bars on stderr (indicatif) for the long commands: `import`,
//! `export`, `verify`, `compact`.
//!
//! A bar is drawn only when stderr is a terminal and `--quiet` is not
//! given; otherwise every call is a no-op, so scripts and logs stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting entries (in its message) and bytes (the bar itself, with
/// rate and ETA), or a spinner when the work cannot be measured.
pub struct Progress {
    bar: ProgressBar,
    noun: &'static str,
    entries: u64,
    entries_total: u64,
}

/// Whether progress should be drawn.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

impl Progress {
    /// A bar toward `entries_total` entries (called `noun`, e.g. "files")
    /// and `bytes_total` bytes; `verb` prefixes it ("importing").
    pub fn new(
        verb: &str,
        noun: &'static str,
        entries_total: u64,
        bytes_total: u64,
        quiet: bool,
    ) -> Progress {
        let p = Progress {
            bar: bar(verb, bytes_total, quiet),
            noun,
            entries: 0,
            entries_total,
        };
        p.show_entries();
        p
    }

    /// A bar toward `bytes_total` bytes with a fixed message, for work
    /// observed only by its output size.
    pub fn measured(verb: &str, message: String, bytes_total: u64, quiet: bool) -> Progress {
        let bar = bar(verb, bytes_total, quiet);
        bar.set_message(message);
        Progress {
            bar,
            noun: "",
            entries: 0,
            entries_total: 0,
        }
    }

    /// A spinner with a message and the elapsed time, for work whose
    /// progress cannot be observed.
    pub fn spinner(message: String, quiet: bool) -> Progress {
        let bar = if enabled(quiet) {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                b.set_style(style);
            }
            b.set_message(message);
            b.enable_steady_tick(Duration::from_millis(100));
            b
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            noun: "",
            entries: 0,
            entries_total: 0,
        }
    }

    fn show_entries(&self) {
        if !self.bar.is_hidden() {
            self.bar.set_message(format!(
                "{}/{} {}",
                self.entries, self.entries_total, self.noun
            ));
        }
    }

    /// Counts `entries` more entries and `bytes` more bytes done.
    pub fn add(&mut self, entries: u64, bytes: u64) {
        self.entries += entries;
        self.bar.inc(bytes);
        if entries > 0 {
            self.show_entries();
        }
    }

    /// Sets the bytes done (for work observed from outside, like the
    /// growing output of `compact`); grows the total if it was an
    /// underestimate.
    pub fn set_bytes(&self, bytes: u64) {
        if self.bar.length().is_some_and(|l| bytes > l) {
            self.bar.set_length(bytes);
        }
        self.bar.set_position(bytes);
    }

    /// Prints a note on stderr without tearing the bar.
    pub fn note(&self, message: &str) {
        self.bar.suspend(|| eprintln!("dfcache: {message}"));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A byte bar, or a hidden one.
fn bar(verb: &str, bytes_total: u64, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    let b =
        ProgressBar::with_draw_target(Some(bytes_total), ProgressDrawTarget::stderr_with_hz(10));
    // The template is a constant; should it ever fail to parse, the default
    // style is still a usable bar.
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg}, \
         {binary_bytes_per_sec}, ETA {eta}",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_prefix(verb.to_string());
    b
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error return leaves no half-drawn bar behind.
        self.bar.finish_and_clear();
    }
}
