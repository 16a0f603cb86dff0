//! Integration tests of central: the storage suite on SQLite and PostgreSQL,
//! the HTTPS API end to end with a terminal built from `shared::wire`,
//! imports, scoping, two central instances over one PostgreSQL, and the
//! real `agent` binary against the real `central` binary.

mod agent_binary;
mod agent_harness;
mod cli;
mod concurrent;
mod db;
mod e2e;
mod ingest;
mod ledger;
mod migrations;
mod openapi;
mod reports;
mod staff;
mod sync;
mod world;
