//! Progress bars on stderr (indicatif) for the long commands: `import`,
//! `export`, `verify`, `compact`.
//!
//! A bar is drawn only when stderr is a terminal and `--quiet` is not
//! given; otherwise every call is a no-op, so scripts and logs stay clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting entries (in its message) and bytes (the bar itself, with
/// rate and ETA). `import` and `export` count files as they go; `verify`
/// and `compact` follow the library's progress reports
/// (`verify_with_progress`, `compact_to_with_progress`).
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
        Progress {
            bar: bar(
                verb,
                format!("0/{entries_total} {noun}"),
                bytes_total,
                quiet,
            ),
            noun,
            entries: 0,
            entries_total,
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

    /// Sets what is done from a library progress report (`verify`,
    /// `compact`): entries and stored bytes, with their totals. A total
    /// that turns out too small (the report counts as it goes) grows.
    pub fn report(&mut self, p: dfcache::Progress) {
        if self.bar.is_hidden() {
            return;
        }
        self.entries = p.entries;
        self.entries_total = p.entries_total.max(p.entries);
        self.show_entries();
        let total = p.bytes_total.max(p.bytes);
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
        }
        self.bar.set_position(p.bytes);
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

/// A byte bar showing `message` from its first frame, or a hidden one.
fn bar(verb: &str, message: String, bytes_total: u64, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    // Set up hidden, then shown: the first frame is complete.
    let b = ProgressBar::with_draw_target(Some(bytes_total), ProgressDrawTarget::hidden());
    // The template is a constant; should it ever fail to parse, the default
    // style is still a usable bar.
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {msg}, \
         {binary_bytes_per_sec}, ETA {eta}",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(message);
    b.set_prefix(verb.to_string());
    b.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    b
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error return leaves no half-drawn bar behind.
        self.bar.finish_and_clear();
    }
}
