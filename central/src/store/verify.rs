//! What ingestion reads to check a packet's records against, in one call:
//! central's current snapshot version, the state of the credentials the
//! records name, every version of their recipients' grants and memberships
//! (migration `0004_ingest.sql` keeps them, each with the first snapshot
//! version that can contain it), and the groups each named benefit has
//! named over time. A separate trait from [`super::Store`] (its
//! supertrait); both backends implement it here.

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use async_trait::async_trait;
use jiff::civil::Date;
use rusqlite::types::Value;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{CredentialState, StoreError, StoreResult};

/// Where an entitlement version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A grant: `key` is the benefit id.
    Grant,
    /// A membership: `key` is the group id.
    Membership,
}

/// One version of a grant or membership of a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementVersion {
    pub source: Source,
    pub key: String,
    pub valid_from: Option<Date>,
    pub valid_to: Option<Date>,
    /// The first snapshot version that can contain this version.
    pub known_from: u64,
}

/// The groups a benefit named from one snapshot version on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsVersion {
    pub groups: Vec<String>,
    pub known_from: u64,
}

/// Everything [`VerifyStore::record_facts`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFacts {
    /// Central's current snapshot version (the highest change seq): no
    /// terminal can have a snapshot newer than this.
    pub version: u64,
    /// Credential states by hash, for the known ones among those asked.
    pub credentials: HashMap<String, CredentialState>,
    /// Entitlement versions by recipient, for the recipients of those credentials.
    pub entitlements: HashMap<String, Vec<EntitlementVersion>>,
    /// Group versions by benefit id, for the benefits asked.
    pub benefit_groups: HashMap<String, Vec<GroupsVersion>>,
}

/// The verification facts' storage interface. Every method is one transaction.
#[async_trait]
pub trait VerifyStore: Send + Sync + 'static {
    /// Facts for checking records that name these credential hashes and
    /// these benefit ids.
    async fn record_facts(
        &self,
        credentials: &[String],
        benefits: &[String],
    ) -> StoreResult<RecordFacts>;
}

fn source(text: &str) -> StoreResult<Source> {
    match text {
        "grant" => Ok(Source::Grant),
        "membership" => Ok(Source::Membership),
        other => Err(StoreError::Other(format!(
            "entitlement_versions.source: unknown value {other:?}"
        ))),
    }
}

fn date(text: Option<String>) -> StoreResult<Option<Date>> {
    text.map(|text| {
        text.parse().map_err(|err| {
            StoreError::Other(format!("entitlement_versions: stored date {text:?}: {err}"))
        })
    })
    .transpose()
}

fn groups(benefit: &str, json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|err| {
        StoreError::Other(format!(
            "benefit_groups_versions: groups of {benefit:?} ({json:?}): {err}"
        ))
    })
}

fn seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait]
impl VerifyStore for SqliteStore {
    async fn record_facts(
        &self,
        credentials: &[String],
        benefits: &[String],
    ) -> StoreResult<RecordFacts> {
        let credentials = credentials.to_vec();
        let benefits = benefits.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let mut facts = RecordFacts {
                version: seq(tx.query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM changes",
                    [],
                    |row| row.get(0),
                )?),
                ..RecordFacts::default()
            };
            {
                // Two statements for the whole packet (credentials, then
                // their recipients' entitlement versions), each reading an
                // array of keys: one statement per credential cost more in
                // statement set-up than in index lookups.
                let hashes: Rc<Vec<Value>> = Rc::new(
                    credentials
                        .into_iter()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .map(Value::from)
                        .collect(),
                );
                let mut credential = tx.prepare_cached(
                    "SELECT hash, recipient, blocked_seq FROM credentials WHERE hash IN rarray(?1)",
                )?;
                let mut rows = credential.query([&hashes])?;
                let mut recipients = BTreeSet::new();
                while let Some(row) = rows.next()? {
                    let recipient: String = row.get(1)?;
                    let blocked: Option<i64> = row.get(2)?;
                    recipients.insert(recipient.clone());
                    facts.credentials.insert(
                        row.get(0)?,
                        CredentialState {
                            recipient,
                            blocked_seq: blocked.map(seq),
                        },
                    );
                }
                let recipients: Rc<Vec<Value>> = Rc::new(
                    recipients
                        .into_iter()
                        .map(|recipient| {
                            facts.entitlements.entry(recipient.clone()).or_default();
                            Value::from(recipient)
                        })
                        .collect(),
                );
                let mut entitlements = tx.prepare_cached(
                    "SELECT recipient, source, key, valid_from, valid_to, known_from
                     FROM entitlement_versions WHERE recipient IN rarray(?1)",
                )?;
                let mut rows = entitlements.query([&recipients])?;
                while let Some(row) = rows.next()? {
                    let recipient: String = row.get(0)?;
                    let source_text: String = row.get(1)?;
                    let version = EntitlementVersion {
                        source: source(&source_text)?,
                        key: row.get(2)?,
                        valid_from: date(row.get(3)?)?,
                        valid_to: date(row.get(4)?)?,
                        known_from: seq(row.get(5)?),
                    };
                    let versions = facts.entitlements.entry(recipient).or_default();
                    if !versions.contains(&version) {
                        versions.push(version);
                    }
                }
                let mut benefit_groups = tx.prepare_cached(
                    "SELECT groups, known_from FROM benefit_groups_versions WHERE benefit = ?1",
                )?;
                for benefit in benefits {
                    let mut found = Vec::new();
                    let mut rows = benefit_groups.query([&benefit])?;
                    while let Some(row) = rows.next()? {
                        let json: String = row.get(0)?;
                        found.push(GroupsVersion {
                            groups: groups(&benefit, &json)?,
                            known_from: seq(row.get(1)?),
                        });
                    }
                    facts.benefit_groups.insert(benefit, found);
                }
            }
            tx.commit()?;
            Ok(facts)
        })
        .await
    }
}

#[async_trait]
impl VerifyStore for PostgresStore {
    async fn record_facts(
        &self,
        credentials: &[String],
        benefits: &[String],
    ) -> StoreResult<RecordFacts> {
        use tokio_postgres::types::ToSql;
        let mut client = self.client().await?;
        // One snapshot of the database for all four reads.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        // The reads in two round trips, each statement prepared once per
        // connection: the version, the credentials and the benefits' groups
        // together, then the entitlement versions of the credentials'
        // recipients (a semi-join instead would read the credentials twice).
        let version_read = tx
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")
            .await?;
        let credentials_read = tx
            .prepare_cached(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE hash = ANY($1)",
            )
            .await?;
        let groups_read = tx
            .prepare_cached(
                "SELECT benefit, groups, known_from FROM benefit_groups_versions WHERE benefit = ANY($1)",
            )
            .await?;
        let entitlements_read = tx
            .prepare_cached(
                "SELECT recipient, source, key, valid_from, valid_to, known_from FROM entitlement_versions
                 WHERE recipient = ANY($1)",
            )
            .await?;
        let credential_params: [&(dyn ToSql + Sync); 1] = [&credentials];
        let benefit_params: [&(dyn ToSql + Sync); 1] = [&benefits];
        let (version_row, credential_rows, group_rows) = futures_util::try_join!(
            tx.query_one(&version_read, &[]),
            tx.query(&credentials_read, &credential_params),
            tx.query(&groups_read, &benefit_params),
        )?;
        let version: i64 = version_row.get(0);
        let mut facts = RecordFacts {
            version: seq(version),
            ..RecordFacts::default()
        };
        for row in credential_rows {
            let blocked: Option<i64> = row.get(2);
            facts.credentials.insert(
                row.get(0),
                CredentialState {
                    recipient: row.get(1),
                    blocked_seq: blocked.map(seq),
                },
            );
        }
        let recipients: Vec<&str> = facts
            .credentials
            .values()
            .map(|state| state.recipient.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let entitlement_rows = tx.query(&entitlements_read, &[&recipients]).await?;
        for recipient in recipients {
            facts.entitlements.insert(recipient.to_owned(), Vec::new());
        }
        for row in entitlement_rows {
            let recipient: String = row.get(0);
            let source_text: &str = row.get(1);
            let version = EntitlementVersion {
                source: source(source_text)?,
                key: row.get(2),
                valid_from: date(row.get(3))?,
                valid_to: date(row.get(4))?,
                known_from: seq(row.get(5)),
            };
            facts
                .entitlements
                .entry(recipient)
                .or_default()
                .push(version);
        }
        for benefit in benefits {
            facts.benefit_groups.insert(benefit.clone(), Vec::new());
        }
        for row in group_rows {
            let benefit: String = row.get(0);
            let json: &str = row.get(1);
            let version = GroupsVersion {
                groups: groups(&benefit, json)?,
                known_from: seq(row.get(2)),
            };
            facts
                .benefit_groups
                .entry(benefit)
                .or_default()
                .push(version);
        }
        tx.commit().await?;
        Ok(facts)
    }
}
