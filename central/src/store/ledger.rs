//! Storage of what central decides after ingestion: reconciliation
//! outcomes, fraud and integrity flags with their audit trail, and issued
//! settlements. A separate trait from [`super::Store`] (its supertrait) so
//! that the ledger's queries live beside each other; both backends
//! implement it.

use async_trait::async_trait;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;

/// The ledger's storage interface. Every method is one transaction.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {}

impl LedgerStore for SqliteStore {}
impl LedgerStore for PostgresStore {}
