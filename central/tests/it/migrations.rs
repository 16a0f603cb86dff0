//! The two migration directories must stay in step: the same file names in
//! the same order, each listed in its backend's migration table.

use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let sqlite = names(&root.join("sqlite"));
    let postgres = names(&root.join("postgres"));
    assert!(!sqlite.is_empty(), "no migrations found");
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres differ"
    );
    let embedded_sqlite: Vec<&str> = central::store::sqlite::MIGRATIONS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let embedded_postgres: Vec<&str> = central::store::postgres::MIGRATIONS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        embedded_sqlite, sqlite,
        "sqlite.rs does not embed every migration"
    );
    assert_eq!(
        embedded_postgres, postgres,
        "postgres.rs does not embed every migration"
    );
}

#[test]
fn both_schemas_create_the_same_tables_and_columns() {
    // Compare `CREATE` statements and column names with their type family.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for name in names(&root.join("sqlite")) {
        let columns = |dir: &str| -> Vec<String> {
            let text = std::fs::read_to_string(root.join(dir).join(&name)).expect("migration text");
            // Triggers and functions are written in each database's own
            // dialect: a migration marks them, and only they, as
            // backend-specific.
            let mut specific = false;
            text.lines()
                .map(str::trim)
                .filter(|line| match *line {
                    "-- backend-specific: begin" => {
                        specific = true;
                        false
                    }
                    "-- backend-specific: end" => {
                        specific = false;
                        false
                    }
                    _ => !specific,
                })
                .filter(|line| !line.starts_with("--") && !line.is_empty())
                .map(|line| {
                    let words = if line.starts_with("CREATE") { 3 } else { 2 };
                    line.split_whitespace()
                        .take(words)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .map(|line| line.replace("BIGINT", "INTEGER"))
                .collect()
        };
        assert_eq!(
            columns("sqlite"),
            columns("postgres"),
            "{name} differs in shape"
        );
    }
}

/// A file written before `0007_lookups.sql` (credentials in a rowid table)
/// is upgraded in place when central opens it: every credential, blocked or
/// not, is found afterwards as before, by hash, by recipient and by the
/// lookup ingestion makes, and the table is now keyed by the hash.
#[tokio::test]
async fn upgrading_a_sqlite_file_past_0007_keeps_every_credential() {
    use central::store::sqlite::{SqliteStore, MIGRATIONS};
    use central::store::verify::VerifyStore;
    use central::store::{CredentialStatus, Store};

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("central.db");
    let hashes: Vec<String> = (0..3).map(|n| format!("{n:064x}")).collect();
    {
        let conn = rusqlite::Connection::open(&path).expect("opening the old file");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .expect("migration table");
        for (name, sql) in MIGRATIONS
            .iter()
            .take_while(|(name, _)| *name != "0007_lookups.sql")
        {
            conn.execute_batch(sql)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, '2026-01-01T00:00:00Z')",
                [name],
            )
            .expect("recording the migration");
        }
        conn.execute_batch(&format!(
            "INSERT INTO recipients (id, provider) VALUES ('R-1', 'riga'), ('R-2', 'riga');
             INSERT INTO credentials (hash, kind, recipient, blocked_seq) VALUES
                 ('{}', 'card', 'R-1', NULL), ('{}', 'qr', 'R-1', 7), ('{}', 'card', 'R-2', NULL);",
            hashes[0], hashes[1], hashes[2]
        ))
        .expect("old rows");
    }

    let store = SqliteStore::open(&path).await.expect("upgrading the file");
    let mut asked = hashes.clone();
    asked.push(format!("{:064x}", 99));
    let mut found = store
        .credentials_by_hash(&asked)
        .await
        .expect("credentials by hash");
    found.sort_by(|a, b| a.hash.cmp(&b.hash));
    let seen: Vec<(&str, &str, CredentialStatus)> = found
        .iter()
        .map(|row| (row.hash.as_str(), row.recipient.as_str(), row.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (hashes[0].as_str(), "R-1", CredentialStatus::Active),
            (hashes[1].as_str(), "R-1", CredentialStatus::Blocked),
            (hashes[2].as_str(), "R-2", CredentialStatus::Active),
        ]
    );
    let of_r1 = store
        .credentials_of(&["R-1".to_owned()])
        .await
        .expect("credentials of a recipient");
    assert_eq!(of_r1.len(), 2, "R-1 has two credentials: {of_r1:?}");
    let facts = store
        .record_facts(&asked, &[])
        .await
        .expect("ingestion's lookup");
    assert_eq!(facts.credentials.len(), 3);
    assert_eq!(facts.credentials[&hashes[1]].blocked_seq, Some(7));
    assert_eq!(
        facts.entitlements.keys().collect::<Vec<_>>().len(),
        2,
        "both recipients are looked up: {:?}",
        facts.entitlements
    );
    drop(store);

    let conn = rusqlite::Connection::open(&path).expect("reopening");
    let schema: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'credentials'",
            [],
            |row| row.get(0),
        )
        .expect("credentials table");
    assert!(schema.contains("WITHOUT ROWID"), "{schema}");
}
