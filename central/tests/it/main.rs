//! Integration tests of central: the storage suite on SQLite and PostgreSQL,
//! the HTTPS API end to end with a terminal built from `shared::wire`,
//! imports, scoping, and two central instances over one PostgreSQL.

mod cli;
mod concurrent;
mod db;
mod e2e;
mod migrations;
mod openapi;
mod staff;
mod sync;
mod world;
