//! Building snapshots for one terminal: a full snapshot of the current
//! state, or a delta from a version the terminal has, scoped to the
//! terminal's categories and signed with central's key through
//! `shared::wire::snapshot::SnapshotWriter`.
//!
//! - Benefits: those whose categories overlap the terminal's, without `groups`.
//! - Recipients: those with at least one entitlement to such a benefit;
//!   memberships are resolved here into per-benefit entitlements, so no
//!   group ever reaches a terminal. Usage per local day for the benefits'
//!   current limit periods, from every terminal but the receiving one
//!   (the agent adds its own journal; `docs/sync-protocol.md`).
//! - Credentials: keyed hashes of the recipients in scope, blocked ones with
//!   `status: blocked` (the deny list).
//!
//! The version is read before any data, and items are "replace" lines, so
//! a change that lands while a snapshot streams is sent again by the next
//! delta: never lost, at worst sent twice. Pages of the register are read
//! one short query at a time and streamed out, so memory stays bounded
//! (except the set of recipient ids in scope, kept for the credential pass).
//!
//! Deliberately missing: personal data. Nothing here reads `recipient_personal`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use jiff::Timestamp;
use shared::model::{category_covers, Benefit, Grant};
use shared::money::Money;
use shared::time::period_start;
use shared::wire::snapshot::{
    CredentialStatus as WireStatus, SnapshotHeader, SnapshotItem, SnapshotKind, SnapshotType,
    SnapshotWriter, UsageDay, SNAPSHOT_VERSION,
};
use shared::wire::WireError;

use crate::keys::Keys;
use crate::store::{
    Change, CredentialRow, CredentialStatus, RecipientData, Store, StoreError, Terminal, UsageQuery,
};

/// Rows read per page of the register.
pub const PAGE_ROWS: u32 = 10_000;
/// Above this many changes a delta is not worth it: a full snapshot is sent.
pub const DELTA_CHANGES_MAX: u64 = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the snapshot: {0}")]
    Wire(#[from] WireError),
    #[error("the receiver went away")]
    Closed,
}

/// What a terminal gets for `have`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `have` is the newest version: nothing to send.
    Current,
    Full {
        version: u64,
    },
    Delta {
        base: u64,
        version: u64,
    },
}

/// Decides between nothing, a delta and a full snapshot.
pub async fn plan(store: &dyn Store, have: Option<u64>) -> Result<Plan, StoreError> {
    let version = store.version().await?;
    let Some(have) = have else {
        return Ok(Plan::Full { version });
    };
    if have == version {
        return Ok(Plan::Current);
    }
    // A terminal claiming a version central never reached, or one older
    // than the retained change log, gets a full snapshot.
    if have > version || have < store.oldest_delta_base().await? {
        return Ok(Plan::Full { version });
    }
    let changes = store
        .changes_since(have, version, DELTA_CHANGES_MAX)
        .await?;
    if changes.len() as u64 > DELTA_CHANGES_MAX {
        return Ok(Plan::Full { version });
    }
    Ok(Plan::Delta {
        base: have,
        version,
    })
}

/// The terminal's view of the register: which benefits are in scope.
struct Scope {
    /// In-scope benefits by id, as the provider defined them (with groups).
    benefits: BTreeMap<String, Benefit>,
    /// Group id → in-scope benefit ids whose groups contain it.
    by_group: HashMap<String, Vec<String>>,
    usage: UsageQuery,
}

/// `true` when the benefit sells in one of the terminal's categories.
pub fn in_scope(benefit: &Benefit, categories: &[String]) -> bool {
    benefit.categories.iter().any(|benefit_category| {
        categories.iter().any(|terminal_category| {
            category_covers(benefit_category, terminal_category)
                || category_covers(terminal_category, benefit_category)
        })
    })
}

/// A benefit as terminals see it: without `groups`.
pub fn terminal_form(benefit: &Benefit) -> Benefit {
    Benefit {
        groups: Vec::new(),
        ..benefit.clone()
    }
}

async fn scope(
    store: &dyn Store,
    terminal: &Terminal,
    now: Timestamp,
) -> Result<Scope, StoreError> {
    let mut benefits = BTreeMap::new();
    let mut by_group: HashMap<String, Vec<String>> = HashMap::new();
    let mut since: Option<Date> = None;
    for stored in store.benefits(None).await? {
        let benefit = stored.benefit;
        if !in_scope(&benefit, &terminal.categories) {
            continue;
        }
        for group in &benefit.groups {
            by_group
                .entry(group.clone())
                .or_default()
                .push(benefit.id.clone());
        }
        if let Some(start) = usage_start(&benefit, now) {
            since = Some(since.map_or(start, |since| since.min(start)));
        }
        benefits.insert(benefit.id.clone(), benefit);
    }
    Ok(Scope {
        benefits,
        by_group,
        usage: UsageQuery {
            // With no limits in scope no usage is needed: ask from the far future.
            since: since.unwrap_or(Date::MAX),
            exclude_terminal: terminal.id.clone(),
        },
    })
}

/// The first local day of the longest current limit period of a benefit.
fn usage_start(benefit: &Benefit, now: Timestamp) -> Option<Date> {
    let today = now.to_zoned(benefit.time_zone.tz().clone()).date();
    benefit
        .limits
        .iter()
        .map(|limit| period_start(today, limit.period))
        .min()
}

/// Entitlements of one recipient to in-scope benefits, memberships resolved.
fn entitlements(scope: &Scope, data: &RecipientData) -> Vec<Grant> {
    let mut out: Vec<Grant> = data
        .entries
        .grants
        .iter()
        .filter(|grant| scope.benefits.contains_key(&grant.benefit))
        .cloned()
        .collect();
    for membership in &data.entries.memberships {
        for benefit in scope.by_group.get(&membership.group).into_iter().flatten() {
            out.push(Grant {
                benefit: benefit.clone(),
                valid_from: membership.valid_from,
                valid_to: membership.valid_to,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.benefit, a.valid_from, a.valid_to).cmp(&(&b.benefit, b.valid_from, b.valid_to))
    });
    out.dedup();
    out
}

/// Usage lines of one recipient: in-scope benefits with limits, days in
/// their current longest period.
fn usage(scope: &Scope, data: &RecipientData, now: Timestamp) -> Vec<UsageDay> {
    let mut out: Vec<UsageDay> = data
        .usage
        .iter()
        .filter(|row| row.count > 0 || row.amount_cents > 0)
        .filter(|row| {
            scope
                .benefits
                .get(&row.benefit)
                .and_then(|benefit| usage_start(benefit, now))
                .is_some_and(|start| row.day >= start)
        })
        .map(|row| UsageDay {
            amount: Money::from_cents(row.amount_cents.max(0)),
            benefit: row.benefit.clone(),
            count: u32::try_from(row.count.max(0)).unwrap_or(u32::MAX),
            day: row.day,
        })
        .collect();
    out.sort_by(|a, b| (&a.benefit, a.day).cmp(&(&b.benefit, b.day)));
    out
}

fn recipient_item(scope: &Scope, data: &RecipientData, now: Timestamp) -> Option<SnapshotItem> {
    let entitlements = entitlements(scope, data);
    if entitlements.is_empty() {
        return None;
    }
    Some(SnapshotItem::Recipient {
        recipient: data.id.clone(),
        entitlements,
        usage: usage(scope, data, now),
    })
}

fn credential_item(row: &CredentialRow) -> SnapshotItem {
    SnapshotItem::Credential {
        hash: row.hash.clone(),
        recipient: row.recipient.clone(),
        status: match row.status {
            CredentialStatus::Active => WireStatus::Active,
            CredentialStatus::Blocked => WireStatus::Blocked,
        },
    }
}

/// A `Write` whose bytes are taken out in chunks between pages.
#[derive(Clone, Default)]
pub struct ChunkBuffer(Arc<Mutex<Vec<u8>>>);

impl ChunkBuffer {
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut buffer| std::mem::take(&mut *buffer))
            .unwrap_or_default()
    }
}

impl Write for ChunkBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("snapshot buffer poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where finished chunks go: an HTTP body, a file, a test's `Vec`.
#[async_trait::async_trait]
pub trait ChunkSink: Send {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SnapshotError>;
}

#[async_trait::async_trait]
impl ChunkSink for Vec<u8> {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SnapshotError> {
        self.extend_from_slice(&chunk);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ChunkSink for tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>> {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SnapshotError> {
        tokio::sync::mpsc::Sender::send(self, Ok(chunk))
            .await
            .map_err(|_| SnapshotError::Closed)
    }
}

struct Out<'a, S: ChunkSink> {
    writer: SnapshotWriter<ChunkBuffer>,
    buffer: ChunkBuffer,
    sink: &'a mut S,
}

impl<S: ChunkSink> Out<'_, S> {
    fn push(&mut self, item: &SnapshotItem) -> Result<(), SnapshotError> {
        Ok(self.writer.push(item)?)
    }
    async fn flush(&mut self) -> Result<(), SnapshotError> {
        let chunk = self.buffer.take();
        if !chunk.is_empty() {
            self.sink.send(chunk).await?;
        }
        Ok(())
    }
}

/// Streams the snapshot `plan` asks for into `sink`. Returns the number
/// of items written.
pub async fn build<S: ChunkSink>(
    store: &Arc<dyn Store>,
    keys: &Keys,
    terminal: &Terminal,
    plan: Plan,
    now: Timestamp,
    sink: &mut S,
) -> Result<u64, SnapshotError> {
    let (kind, base, version) = match plan {
        Plan::Current => return Ok(0),
        Plan::Full { version } => (SnapshotKind::Full, None, version),
        Plan::Delta { base, version } => (SnapshotKind::Delta, Some(base), version),
    };
    let header = SnapshotHeader {
        base,
        built_at: now,
        credential_key_id: keys.credential_key_id.clone(),
        key_id: keys.signing.key_id(),
        kind,
        merchant: terminal.merchant.clone(),
        terminal: terminal.id.clone(),
        snapshot_type: SnapshotType::Snapshot,
        v: SNAPSHOT_VERSION,
        version,
    };
    let buffer = ChunkBuffer::default();
    let writer = SnapshotWriter::new(buffer.clone(), &header)?;
    let scope = scope(store.as_ref(), terminal, now).await?;
    let mut out = Out {
        writer,
        buffer,
        sink,
    };
    let items = match base {
        None => full(store, &scope, now, &mut out).await?,
        Some(base) => {
            delta(
                store.as_ref(),
                &scope,
                terminal,
                base,
                version,
                now,
                &mut out,
            )
            .await?
        }
    };
    let Out {
        writer,
        buffer,
        sink,
    } = out;
    writer.finish(&keys.signing)?;
    let chunk = buffer.take();
    if !chunk.is_empty() {
        sink.send(chunk).await?;
    }
    Ok(items)
}

async fn full<S: ChunkSink>(
    store: &Arc<dyn Store>,
    scope: &Scope,
    now: Timestamp,
    out: &mut Out<'_, S>,
) -> Result<u64, SnapshotError> {
    let mut items = 0;
    for benefit in scope.benefits.values() {
        out.push(&SnapshotItem::Benefit {
            benefit: terminal_form(benefit),
        })?;
        items += 1;
    }
    // Each page is fetched by its own task while the previous one is
    // written: the database, the client's row decoding and the writer work
    // on different cores at once.
    let mut in_scope: HashSet<String> = HashSet::new();
    let mut page = store.recipients_page("", PAGE_ROWS, &scope.usage).await?;
    while !page.is_empty() {
        let full_page = page.len() == PAGE_ROWS as usize;
        let after = page.last().map(|data| data.id.clone()).unwrap_or_default();
        let fetch_store = Arc::clone(store);
        let usage = scope.usage.clone();
        let fetch = tokio::spawn(async move {
            if full_page {
                fetch_store.recipients_page(&after, PAGE_ROWS, &usage).await
            } else {
                Ok(Vec::new())
            }
        });
        let write = async {
            let mut written = 0;
            for data in &page {
                if let Some(item) = recipient_item(scope, data, now) {
                    out.push(&item)?;
                    written += 1;
                    in_scope.insert(data.id.clone());
                }
            }
            out.flush().await?;
            Ok::<u64, SnapshotError>(written)
        };
        let written = write.await;
        items += written?;
        page = joined(fetch.await)?;
    }
    let mut page = store.credentials_page("", PAGE_ROWS).await?;
    while !page.is_empty() {
        let full_page = page.len() == PAGE_ROWS as usize;
        let after = page.last().map(|row| row.hash.clone()).unwrap_or_default();
        let fetch_store = Arc::clone(store);
        let fetch = tokio::spawn(async move {
            if full_page {
                fetch_store.credentials_page(&after, PAGE_ROWS).await
            } else {
                Ok(Vec::new())
            }
        });
        let write = async {
            let mut written = 0;
            for row in &page {
                if in_scope.contains(&row.recipient) {
                    out.push(&credential_item(row))?;
                    written += 1;
                }
            }
            out.flush().await?;
            Ok::<u64, SnapshotError>(written)
        };
        let written = write.await;
        items += written?;
        page = joined(fetch.await)?;
    }
    Ok(items)
}

/// The result of a page-fetching task.
fn joined<T>(
    result: Result<Result<T, StoreError>, tokio::task::JoinError>,
) -> Result<T, SnapshotError> {
    match result {
        Ok(page) => Ok(page?),
        Err(err) => Err(StoreError::Other(format!("page fetch task: {err}")).into()),
    }
}

async fn delta<S: ChunkSink>(
    store: &dyn Store,
    scope: &Scope,
    terminal: &Terminal,
    base: u64,
    version: u64,
    now: Timestamp,
    out: &mut Out<'_, S>,
) -> Result<u64, SnapshotError> {
    let changes = store
        .changes_since(base, version, DELTA_CHANGES_MAX)
        .await?;
    let mut benefits: Vec<String> = Vec::new();
    let mut credentials: Vec<String> = Vec::new();
    let mut recipients: HashSet<String> = HashSet::new();
    for change in changes {
        match change {
            Change::Benefit(id) => benefits.push(id),
            Change::Credential(hash) => credentials.push(hash),
            Change::Recipient(id) => {
                recipients.insert(id);
            }
        }
    }
    recipients.extend(
        store
            .usage_changed_since(base, version, &terminal.id)
            .await?,
    );
    let mut items = 0;
    benefits.sort();
    benefits.dedup();
    for id in &benefits {
        let item = match scope.benefits.get(id) {
            Some(benefit) => SnapshotItem::Benefit {
                benefit: terminal_form(benefit),
            },
            None => SnapshotItem::BenefitRemoved { id: id.clone() },
        };
        out.push(&item)?;
        items += 1;
    }
    // Credentials whose own row changed, and every credential of a
    // recipient whose lines changed (the recipient may have entered or
    // left the terminal's scope).
    let mut credential_rows = store.credentials_by_hash(&credentials).await?;
    let known_hashes: HashSet<&String> = credential_rows.iter().map(|row| &row.hash).collect();
    let vanished: Vec<String> = credentials
        .iter()
        .filter(|hash| !known_hashes.contains(hash))
        .cloned()
        .collect();
    let mut recipient_ids: Vec<String> = recipients.into_iter().collect();
    recipient_ids.sort();
    credential_rows.extend(store.credentials_of(&recipient_ids).await?);
    let owners: HashSet<String> = credential_rows
        .iter()
        .map(|row| row.recipient.clone())
        .chain(recipient_ids.iter().cloned())
        .collect();
    let mut owners: Vec<String> = owners.into_iter().collect();
    owners.sort();
    let mut in_scope: HashSet<String> = HashSet::new();
    for chunk in owners.chunks(PAGE_ROWS as usize) {
        for data in store.recipients_by_id(chunk, &scope.usage).await? {
            if let Some(item) = recipient_item(scope, &data, now) {
                in_scope.insert(data.id.clone());
                if recipient_ids.binary_search(&data.id).is_ok() {
                    out.push(&item)?;
                    items += 1;
                }
            }
        }
        out.flush().await?;
    }
    for id in &recipient_ids {
        if !in_scope.contains(id) {
            out.push(&SnapshotItem::RecipientRemoved {
                recipient: id.clone(),
            })?;
            items += 1;
        }
    }
    credential_rows.sort_by(|a, b| a.hash.cmp(&b.hash));
    credential_rows.dedup_by(|a, b| a.hash == b.hash);
    for row in &credential_rows {
        let item = if in_scope.contains(&row.recipient) {
            credential_item(row)
        } else {
            SnapshotItem::CredentialRemoved {
                hash: row.hash.clone(),
            }
        };
        out.push(&item)?;
        items += 1;
    }
    for hash in vanished {
        out.push(&SnapshotItem::CredentialRemoved { hash })?;
        items += 1;
    }
    out.flush().await?;
    Ok(items)
}

#[cfg(test)]
mod tests;
