//! Storage of the people behind pseudonymous recipients, for the recipient
//! portal and reports: guardians of minor children. A separate trait from
//! [`super::Store`] (its supertrait); both backends implement it. Nothing
//! here is ever read by snapshot code.

use async_trait::async_trait;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;

/// The people register's storage interface. Every method is one transaction.
#[async_trait]
pub trait PeopleStore: Send + Sync + 'static {}

impl PeopleStore for SqliteStore {}
impl PeopleStore for PostgresStore {}
