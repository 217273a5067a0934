//! The `dfcache` command line: one module per command.

pub mod demo;
