//! Empty: this crate exists to run the loom model in ../loom_stream_counter.rs.
