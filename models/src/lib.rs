//! Stateright models of the Crucial-rs protocol (their own issue), built from the same sans-IO
//! state machines as the server.

pub use crucial_dso::node;
