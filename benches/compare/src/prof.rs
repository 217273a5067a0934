//! Optional control of `perf record`, to profile one workload without the
//! setup around it:
//!
//! ```sh
//! mkfifo /tmp/ctl
//! DFC_PERF_CTL=/tmp/ctl DFC_PERF_SECTION=gets1 DFC_PERF_ENGINE=dfcache \
//!   perf record -g --control=fifo:/tmp/ctl -D -1 -- \
//!   benches/compare/target/release/dfcache-compare --engines dfcache --phases main --no-write
//! ```
//!
//! Sections: load, gets1, gets2, scan, commits (main phase), load-reopen,
//! load-large, gets-large, load-small, gets-small, load-z, gets-z, churn.

use std::io::Write;

/// Records (if asked to) while it lives.
pub struct Section(Option<std::fs::File>);

/// Starts section `name` of engine `engine`: perf records until the
/// returned guard drops, when `DFC_PERF_SECTION` names the section,
/// `DFC_PERF_ENGINE` (if set) the engine, and `DFC_PERF_CTL` perf's control
/// FIFO.
pub fn section(name: &str, engine: &str) -> Section {
    let wanted = std::env::var("DFC_PERF_SECTION").ok();
    let ctl = std::env::var("DFC_PERF_CTL").ok();
    let engine_ok =
        std::env::var("DFC_PERF_ENGINE").map_or(true, |e| e.eq_ignore_ascii_case(engine));
    match (wanted, ctl) {
        (Some(w), Some(ctl)) if w == name && engine_ok => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&ctl)
                .expect("opening perf's control FIFO (DFC_PERF_CTL)");
            f.write_all(b"enable\n")
                .expect("writing to perf's control FIFO");
            Section(Some(f))
        }
        _ => Section(None),
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(b"disable\n");
        }
    }
}
