//! The `dfcache` command line: one module per command, plus the shared
//! concerns every command uses.
//!
//! - `args`: the grammar (clap), descriptions, examples, `--json` field docs;
//! - `error`: `CliError`, exit codes, library error mapping;
//! - `open`: opening the cache read-only or read-write;
//! - `size`: SIZE arguments and human-readable sizes;
//! - `keys`: keys as text or hex; `paths`: keys as file paths;
//! - `output`: standard output and JSON; `progress`: progress bars;
//! - `header`: the raw header and commit records (for `info`); `time`: dates;
//! - `values`: values in and out in constant memory (streaming);
//! - one module per command: `create`, `info`, `stats`, `ls`, `get`, `put`,
//!   `rm`, `import`, `export`, `verify`, `compact`, `clear`, `resize`,
//!   `train_dict`, `dicts`, `demo`; `groups` holds `groups`, `group`,
//!   `put-group` and `rm-group`.

pub mod args;
pub mod clear;
pub mod compact;
pub mod create;
pub mod demo;
pub mod dicts;
pub mod error;
pub mod export;
pub mod get;
pub mod groups;
pub mod header;
pub mod import;
pub mod info;
pub mod keys;
pub mod ls;
pub mod open;
pub mod output;
pub mod paths;
pub mod progress;
pub mod put;
pub mod resize;
pub mod rm;
pub mod size;
pub mod stats;
pub mod time;
pub mod train_dict;
pub mod values;
pub mod verify;

use args::{Cli, Command};
use error::{CliError, CliResult, Exit};

/// Options every command shares.
#[derive(Clone, Copy, Debug)]
pub struct Global {
    /// Keys are given and printed as hex.
    pub hex: bool,
    /// No progress bars or summary lines.
    pub quiet: bool,
}

/// Runs the parsed command line.
///
/// # Errors
/// What went wrong, with its exit code.
pub fn run(cli: Cli) -> CliResult {
    let g = Global {
        hex: cli.hex,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Create(a) => create::run(&a, g),
        Command::Info(a) => info::run(&a, g),
        Command::Stats(a) => stats::run(&a, g),
        Command::Ls(a) => ls::run(&a, g),
        Command::Get(a) => get::run(&a, g),
        Command::Put(a) => put::run(&a, g),
        Command::Rm(a) => rm::run(&a, g),
        Command::Import(a) => import::run(&a, g),
        Command::Export(a) => export::run(&a, g),
        Command::Verify(a) => verify::run(&a, g),
        Command::Compact(a) => compact::run(&a, g),
        Command::Clear(a) => clear::run(&a, g),
        Command::Resize(a) => resize::run(&a, g),
        Command::TrainDict(a) => train_dict::run(&a, g),
        Command::Dicts(a) => dicts::run(&a, g),
        Command::Groups(a) => groups::list(&a, g),
        Command::Group(a) => groups::members(&a, g),
        Command::PutGroup(a) => groups::put(&a, g),
        Command::RmGroup(a) => groups::remove(&a, g),
        // The demo's only failure of its own is blocks failing their
        // checksum: a problem found.
        Command::Demo => demo::run().map_err(|e| CliError::new(Exit::NotFound, e.to_string())),
    }
}
