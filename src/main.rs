//! The `dfcache` command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => match cli::demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dfcache: {e}");
                ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("usage: dfcache demo");
            ExitCode::from(2)
        }
    }
}
