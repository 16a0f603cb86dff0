//! Stores for tests: a fresh SQLite file, or a fresh schema on the
//! PostgreSQL server named by `CENTRAL_TEST_PG_URL`.
//!
//! Without `CENTRAL_TEST_PG_URL` the PostgreSQL variants are skipped, except
//! under CI (`CI` set), where that is an error: CI must never silently skip
//! the second backend. `central/tests/start-postgres.sh` starts a server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use central::store::postgres::PostgresStore;
use central::store::sqlite::SqliteStore;
use central::store::Store;

/// A store and the temporary directory that holds its file and keys.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
    /// For PostgreSQL: the URL and schema, so a second instance can open it.
    pub postgres: Option<(String, String)>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("central.sqlite"))
        .await
        .expect("opening SQLite");
    TestDb {
        store: Arc::new(store),
        dir,
        postgres: None,
    }
}

pub fn postgres_url() -> Option<String> {
    match std::env::var("CENTRAL_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but CENTRAL_TEST_PG_URL is not: the PostgreSQL suite must run in CI \
                 (start a server with central/tests/start-postgres.sh)"
            );
            None
        }
    }
}

static SCHEMAS: AtomicU64 = AtomicU64::new(0);

/// A schema name unique to this test run and call.
pub fn fresh_schema() -> String {
    let n = SCHEMAS.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("t{}_{}_{n}", std::process::id(), nanos % 1_000_000_000)
}

pub async fn postgres() -> Option<TestDb> {
    let url = postgres_url()?;
    let schema = fresh_schema();
    let store = PostgresStore::connect(&url, Some(&schema))
        .await
        .expect("connecting to PostgreSQL");
    Some(TestDb {
        store: Arc::new(store),
        dir: tempfile::tempdir().expect("temporary directory"),
        postgres: Some((url, schema)),
    })
}

/// Runs a test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! store_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::db::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::db::postgres().await {
                    super::$name(db).await
                }
            }
        }
    };
}
