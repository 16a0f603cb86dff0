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
