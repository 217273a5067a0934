//! The `dfcache` command line. Parsing and exit codes live here; the
//! commands live in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::args::Cli;
use cli::error::Exit;

fn main() -> ExitCode {
    let parsed = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    match cli::run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.exit != Exit::Stopped {
                eprintln!("dfcache: {}", e.message);
            }
            ExitCode::from(e.exit as u8)
        }
    }
}

/// Help and version go to stdout (exit 0); a usage error becomes one line
/// on stderr (exit 2).
fn usage(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Nothing useful to do if stdout is gone.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(Exit::Usage as u8)
        }
        _ => {
            eprintln!("dfcache: {}", one_line(&e.render().to_string()));
            ExitCode::from(Exit::Usage as u8)
        }
    }
}

/// Clap's message (several lines, usage included) as one line.
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let msg = parts.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    format!("{msg} (see 'dfcache --help')")
}
