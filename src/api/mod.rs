//! The HTTP API's contract: the wire types its requests and answers use. The CLI is their client.

pub mod types;
