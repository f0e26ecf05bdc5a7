//! The CLI's side of the REST API: the daemon client every library surface shares (crate
//! `dagger-sandbox-daemon-client`), which finds or starts the daemon and types API errors.

pub use dagger_sandbox_daemon_client::client::{probe, Client, CodedError, SseParser};
