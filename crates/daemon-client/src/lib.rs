//! The daemon seen from its clients: where a state dir keeps the daemon's address and token
//! ([`state`]), the identity proof a client checks before it sends the token ([`identity`]), a
//! REST client that finds or starts the daemon ([`client`]), and handles on sandboxes the daemon
//! owns, by id, from any process ([`connect`]). The CLI, the bridge and the Node addon share it.

pub mod client;
pub mod connect;
pub mod identity;
pub mod state;

pub use client::{Client, CodedError};
pub use connect::{connect, create_persistent};
