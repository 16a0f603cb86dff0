//! Ingestion: from the bytes of an uploaded packet to stored records with
//! an outcome each.
//!
//! The pipeline is: decode ([`Packet::from_json`]: well-formed, canonical,
//! consistent header) → packet signature with the terminal's enrolled key →
//! per record, in parallel across cores, [`check_record`]: signature,
//! merchant, local time, credential, benefit versions, and the quote
//! re-run with the `shared` engine on exactly the record's inputs → the
//! store decides the chain (duplicates, forks, gaps, links; a record whose
//! signature fails is kept apart and leaves its seq open) in one
//! transaction. [`check_record`] is a pure function of the record and what
//! central knows (benefit versions by hash, credential states); it could
//! live in `shared` for other verifiers.
//!
//! Verification is not reconciliation: a record is checked against what its
//! terminal knew (its snapshot version and inputs), not against usage
//! recorded later by other terminals.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use rayon::prelude::*;
use shared::model::{Benefit, CartLine, Quote};
use shared::rules::{evaluate, QuoteInput};
use shared::wire::keys::PublicKey;
use shared::wire::packet::Packet;
use shared::wire::record::{BenefitRef, QuoteInputs, RecordBody, RecordKind, SignedRecord};
use shared::wire::verify;
use shared::wire::WireError;

use crate::metrics::Metrics;
use crate::store::plan::{Outcome, Reason, RecordAnswer};
use crate::store::verify::{EntitlementVersion, GroupsVersion, Source};
use crate::store::{
    BenefitVersion, CredentialState, IncomingPacket, IncomingRecord, RecordKindRow, Store,
    StoreError, Terminal, UsageDelta,
};

/// What central knows that a record is checked against.
#[derive(Debug, Default)]
pub struct Knowledge {
    /// Central's snapshot version when the packet arrived: no record can
    /// have been quoted against a newer one.
    pub version: u64,
    /// Published terminal-visible benefit definitions by hash (hex).
    pub benefits: HashMap<String, Arc<BenefitVersion>>,
    /// Credential states by hash, for the credentials the packet names.
    pub credentials: HashMap<String, CredentialState>,
    /// Every version of the grants and memberships of the recipients of
    /// those credentials.
    pub entitlements: HashMap<String, Vec<EntitlementVersion>>,
    /// The groups each named benefit has named, by version.
    pub benefit_groups: HashMap<String, Vec<GroupsVersion>>,
    /// Sales a void may cancel, by seq: `(cart, quote)`.
    pub sales: HashMap<u64, (Vec<CartLine>, Quote)>,
}

/// Everything [`check_record`] decided about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verdict: Result<(), Reason>,
    pub usage: Vec<UsageDelta>,
}

/// Checks one record on its own (everything but its link to the previous
/// record). Pure.
pub fn check_record(
    record: &SignedRecord,
    terminal_key: &PublicKey,
    merchant: &str,
    known: &Knowledge,
) -> Checked {
    let signature_ok = record.verify_signature(terminal_key).is_ok();
    let definitions = definitions(&record.body.inputs, known);
    check_verified_record(
        record,
        signature_ok,
        merchant,
        known,
        definitions.as_deref(),
    )
}

/// [`check_record`] with the signature already verified (`signature_ok`)
/// and the record's benefit definitions already resolved with
/// [`definitions`]: ingestion verifies every signature of a packet while it
/// loads what the records are checked against, and resolves the
/// definitions once per distinct list of named benefits.
pub fn check_verified_record(
    record: &SignedRecord,
    signature_ok: bool,
    merchant: &str,
    known: &Knowledge,
    definitions: Option<&[Benefit]>,
) -> Checked {
    let verdict = if signature_ok {
        verdict(record, merchant, known, definitions)
    } else {
        Err(Reason::BadSignature)
    };
    // A record that does not verify cannot be attributed to the terminal:
    // it is kept as evidence but counts toward no one's usage.
    let usage = if verdict == Err(Reason::BadSignature) {
        Vec::new()
    } else {
        usage_of(record, definitions.unwrap_or_default())
    };
    Checked { verdict, usage }
}

/// Every check of a record but its signature (verified by the caller).
fn verdict(
    record: &SignedRecord,
    merchant: &str,
    known: &Knowledge,
    definitions: Option<&[Benefit]>,
) -> Result<(), Reason> {
    let body = &record.body;
    if body.merchant != merchant {
        return Err(Reason::WrongMerchant);
    }
    if !body.local_time_agrees() {
        return Err(Reason::BadLocalTime);
    }
    // Every later check reads central's knowledge "at inputs.snapshot": a
    // terminal may not claim a version central never had.
    if body.inputs.snapshot > known.version {
        return Err(Reason::UnknownSnapshot);
    }
    let credential = known
        .credentials
        .get(&body.credential.hash)
        .filter(|state| state.recipient == body.recipient)
        .ok_or(Reason::UnknownCredential)?;
    if credential
        .blocked_seq
        .is_some_and(|blocked| blocked <= body.inputs.snapshot)
    {
        return Err(Reason::BlockedCredential);
    }
    let definitions = definitions.ok_or(Reason::UnknownBenefit)?;
    match (body.kind, body.voids) {
        (RecordKind::Sale, None) => {
            entitlements_known(body, known, definitions)?;
            let quote = evaluate(&QuoteInput {
                benefits: definitions,
                grants: &body.inputs.entitlements,
                memberships: &[],
                history: &body.inputs.history,
                cart: &body.cart,
                now: body.at,
            });
            if quote != body.quote {
                return Err(Reason::DiscountMismatch);
            }
            Ok(())
        }
        (RecordKind::Void, Some(voided)) if voided < body.seq => match known.sales.get(&voided) {
            Some((cart, quote)) if *cart == body.cart && *quote == body.quote => Ok(()),
            _ => Err(Reason::BadVoid),
        },
        _ => Err(Reason::BadVoid),
    }
}

/// Every entitlement the quote relies on (those to a benefit the record
/// names a definition of: the engine ignores the others) must be, exactly,
/// a version of a grant of that benefit, or of a membership in a group
/// that benefit named, that central held for the recipient at or before
/// the record's snapshot version. The grant or membership version and the
/// benefit's groups version are each checked against the snapshot version,
/// not against each other.
fn entitlements_known(
    body: &RecordBody,
    known: &Knowledge,
    definitions: &[Benefit],
) -> Result<(), Reason> {
    let snapshot = body.inputs.snapshot;
    let versions = known
        .entitlements
        .get(&body.recipient)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entitlement in &body.inputs.entitlements {
        if !definitions
            .iter()
            .any(|definition| definition.id == entitlement.benefit)
        {
            continue;
        }
        let groups_known = |group: &str| {
            known
                .benefit_groups
                .get(&entitlement.benefit)
                .into_iter()
                .flatten()
                .filter(|version| version.known_from <= snapshot)
                .any(|version| version.groups.iter().any(|named| named == group))
        };
        let granted = versions.iter().any(|version| {
            version.known_from <= snapshot
                && version.valid_from == entitlement.valid_from
                && version.valid_to == entitlement.valid_to
                && match version.source {
                    Source::Grant => version.key == entitlement.benefit,
                    Source::Membership => groups_known(&version.key),
                }
        });
        if !granted {
            return Err(Reason::UnknownEntitlement);
        }
    }
    Ok(())
}

/// The benefit definitions a record names, when every one is a published
/// version with that id, known at the record's snapshot version.
pub fn definitions(inputs: &QuoteInputs, known: &Knowledge) -> Option<Vec<Benefit>> {
    inputs
        .benefits
        .iter()
        .map(|named| {
            known
                .benefits
                .get(&named.hash.to_hex())
                .filter(|version| {
                    version.benefit.id == named.id && version.published_seq <= inputs.snapshot
                })
                .map(|version| version.benefit.clone())
        })
        .collect()
}

/// Usage a record adds to the register (a void takes it back): per benefit
/// and local day in the benefit's time zone, in units discounted and cents.
fn usage_of(record: &SignedRecord, definitions: &[Benefit]) -> Vec<UsageDelta> {
    let body = &record.body;
    let sign = match body.kind {
        RecordKind::Sale => 1,
        RecordKind::Void => -1,
    };
    let units = units_per_benefit(record, definitions);
    let mut per_benefit: BTreeMap<&str, i64> = BTreeMap::new();
    for discount in &body.quote.discounts {
        *per_benefit.entry(discount.benefit.as_str()).or_default() += discount.amount.cents();
    }
    per_benefit
        .into_iter()
        .map(|(benefit, cents)| {
            let zone = definitions
                .iter()
                .find(|definition| definition.id == benefit)
                .map(|definition| definition.time_zone.tz().clone())
                .unwrap_or_else(|| shared::model::Zone::default().tz().clone());
            UsageDelta {
                benefit: benefit.to_owned(),
                day: body.at.to_zoned(zone).date(),
                count: sign * units.get(benefit).copied().unwrap_or(1),
                amount_cents: sign * cents,
            }
        })
        .collect()
}

/// Units discounted per benefit: what the engine counts toward `max_count`.
/// A quote names amounts per line, so for lines of several units the quote
/// is re-run on the cart split into one-unit lines (which the engine
/// discounts identically, unit by unit in order) and counted there.
fn units_per_benefit(record: &SignedRecord, definitions: &[Benefit]) -> HashMap<String, i64> {
    let body = &record.body;
    let mut out: HashMap<String, i64> = HashMap::new();
    let multi_unit = body.quote.discounts.iter().any(|d| {
        body.cart
            .get(d.line as usize)
            .is_some_and(|line| line.qty > 1)
    });
    if !multi_unit {
        for discount in &body.quote.discounts {
            *out.entry(discount.benefit.clone()).or_default() += 1;
        }
        return out;
    }
    for ((_, benefit), units) in units_per_line(body, definitions) {
        *out.entry(benefit).or_default() += i64::from(units);
    }
    out
}

/// Units each benefit discounted on each cart line, by `(line, benefit)`:
/// the engine discounts a line of several units unit by unit, so the quote
/// is re-run on the cart split into one-unit lines and counted there. The
/// ledger uses it too, for its usage lines.
pub fn units_per_line(body: &RecordBody, definitions: &[Benefit]) -> HashMap<(u32, String), u32> {
    let mut origin = Vec::new();
    let mut split = Vec::new();
    for (idx, line) in body.cart.iter().enumerate() {
        for _ in 0..line.qty {
            origin.push(u32::try_from(idx).unwrap_or(u32::MAX));
            split.push(CartLine {
                qty: 1,
                ..line.clone()
            });
        }
    }
    let quote = evaluate(&QuoteInput {
        benefits: definitions,
        grants: &body.inputs.entitlements,
        memberships: &[],
        history: &body.inputs.history,
        cart: &split,
        now: body.at,
    });
    let mut out: HashMap<(u32, String), u32> = HashMap::new();
    for discount in &quote.discounts {
        if let Some(line) = origin.get(discount.line as usize) {
            *out.entry((*line, discount.benefit.clone())).or_default() += 1;
        }
    }
    out
}

/// Turns a checked record into what the store keeps.
pub fn incoming(record: &SignedRecord, checked: Checked) -> IncomingRecord {
    let body = &record.body;
    let providers: String =
        body.quote
            .by_provider
            .keys()
            .fold(String::from(","), |mut out, provider| {
                out.push_str(provider);
                out.push(',');
                out
            });
    IncomingRecord {
        seq: body.seq,
        hash: record.hash().to_hex(),
        prev: body.prev.to_hex(),
        verdict: checked.verdict,
        recipient: body.recipient.clone(),
        credential: body.credential.hash.clone(),
        merchant: body.merchant.clone(),
        at: body.at,
        kind: match body.kind {
            RecordKind::Sale => RecordKindRow::Sale,
            RecordKind::Void => RecordKindRow::Void,
        },
        voids: body.voids,
        discount_cents: body.quote.discount_total.cents(),
        providers,
        snapshot: body.inputs.snapshot,
        // Canonical bodies are JSON text our own encoder wrote: valid UTF-8
        // (checked, which is cheaper than the lossy conversion's scan).
        body: std::str::from_utf8(record.canonical_body())
            .map(str::to_owned)
            .unwrap_or_else(|_| String::from_utf8_lossy(record.canonical_body()).into_owned()),
        sig: record.sig.to_base64(),
        usage: checked.usage,
    }
}

/// Checks every record of a packet, in parallel on the rayon pool.
pub fn check_packet(
    packet: &Packet,
    terminal_key: &PublicKey,
    merchant: &str,
    known: &Knowledge,
) -> Vec<IncomingRecord> {
    let signatures = verify_records(packet, terminal_key);
    check_verified_packet(packet, &signatures, merchant, known)
}

/// Verifies every record signature of a packet, in batches of
/// [`verify::BATCH`] on the rayon pool: `true` where it verifies (exactly
/// as a single check would say, see `shared::wire::verify`). The expensive
/// part of ingestion, and the only part that needs nothing from the store.
pub fn verify_records(packet: &Packet, terminal_key: &PublicKey) -> Vec<bool> {
    packet
        .body
        .records
        .par_chunks(verify::BATCH)
        .flat_map_iter(|chunk| {
            SignedRecord::verify_signatures(chunk, terminal_key, rand::thread_rng())
        })
        .collect()
}

/// [`check_packet`] with the signatures already verified
/// ([`verify_records`]). The definitions are resolved once per distinct
/// list of named benefits: a packet's records nearly always name the same
/// few versions, so this saves a copy of each definition per record.
pub fn check_verified_packet(
    packet: &Packet,
    signatures: &[bool],
    merchant: &str,
    known: &Knowledge,
) -> Vec<IncomingRecord> {
    // Usually one or two distinct lists per packet: a linear search is enough.
    let mut resolved: Vec<(&[BenefitRef], Option<Vec<Benefit>>)> = Vec::new();
    for record in &packet.body.records {
        let named = record.body.inputs.benefits.as_slice();
        if !resolved.iter().any(|(seen, _)| *seen == named) {
            resolved.push((named, definitions(&record.body.inputs, known)));
        }
    }
    packet
        .body
        .records
        .par_iter()
        .enumerate()
        .map(|(idx, record)| {
            let named = record.body.inputs.benefits.as_slice();
            let definitions = resolved
                .iter()
                .find(|(seen, _)| *seen == named)
                .and_then(|(_, definitions)| definitions.as_deref());
            let signature_ok = signatures.get(idx).copied().unwrap_or(false);
            incoming(
                record,
                check_verified_record(record, signature_ok, merchant, known, definitions),
            )
        })
        .collect()
}

/// Why a packet was refused as a whole (nothing stored).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Malformed(#[from] WireError),
    #[error("packet of terminal {found:?} uploaded by terminal {expected:?}")]
    WrongTerminal { expected: String, found: String },
    #[error("sig: the packet signature does not verify with the key enrolled for terminal {0}")]
    BadPacketSignature(String),
    #[error("terminal {0} has no enrolled key")]
    NotEnrolled(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketAnswer {
    pub packet: String,
    /// One answer per record of the packet, in order.
    pub records: Vec<RecordAnswer>,
    /// Earlier `held` records of the terminal whose gap this packet filled,
    /// in seq order, with their final outcome.
    pub resolved: Vec<RecordAnswer>,
    pub acked_through: u64,
}

/// The ingestion service: holds the store and a cache of benefit versions
/// (a version never changes once published, so the cache never goes stale).
pub struct Ingestor {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    benefit_cache: RwLock<HashMap<String, Arc<BenefitVersion>>>,
}

impl Ingestor {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Ingestor {
        Ingestor {
            store,
            metrics,
            benefit_cache: RwLock::new(HashMap::new()),
        }
    }

    /// Decodes, verifies and stores one uploaded packet of `terminal`.
    pub async fn ingest(
        &self,
        terminal: &Terminal,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<PacketAnswer, IngestError> {
        // Decoding is CPU work: keep it off the async workers.
        let owned = bytes.to_vec();
        let packet = tokio::task::spawn_blocking(move || Packet::from_json(&owned))
            .await
            .map_err(|err| StoreError::Other(format!("decoding task: {err}")))??;
        self.ingest_packet(terminal, packet, now).await
    }

    /// Verifies and stores an already decoded packet.
    pub async fn ingest_packet(
        &self,
        terminal: &Terminal,
        packet: Packet,
        now: Timestamp,
    ) -> Result<PacketAnswer, IngestError> {
        if packet.body.terminal != terminal.id {
            return Err(IngestError::WrongTerminal {
                expected: terminal.id.clone(),
                found: packet.body.terminal.clone(),
            });
        }
        let key = terminal
            .public_key
            .as_deref()
            .and_then(|text| PublicKey::from_base64(text).ok())
            .ok_or_else(|| IngestError::NotEnrolled(terminal.id.clone()))?;
        // Signatures (the packet's and every record's: most of the CPU work)
        // are verified on the rayon pool while what the records are checked
        // against is read from the store, so neither waits for the other.
        let packet = Arc::new(packet);
        let verified_packet = Arc::clone(&packet);
        let verification = tokio::task::spawn_blocking(move || {
            let packet_ok = verified_packet.verify_signature(&key).is_ok();
            let signatures = if packet_ok {
                verify_records(&verified_packet, &key)
            } else {
                Vec::new()
            };
            (packet_ok, signatures)
        });
        let (verification, known) = tokio::join!(verification, self.knowledge(terminal, &packet));
        let (packet_ok, signatures) =
            verification.map_err(|err| StoreError::Other(format!("verification task: {err}")))?;
        if !packet_ok {
            return Err(IngestError::BadPacketSignature(terminal.id.clone()));
        }
        let known = known?;
        let merchant = terminal.merchant.clone();
        let checked_packet = Arc::clone(&packet);
        let records = tokio::task::spawn_blocking(move || {
            check_verified_packet(&checked_packet, &signatures, &merchant, &known)
        })
        .await
        .map_err(|err| StoreError::Other(format!("checking task: {err}")))?;
        let incoming = IncomingPacket {
            id: packet.id().to_hex(),
            terminal: terminal.id.clone(),
            first_seq: packet.body.first_seq,
            last_seq: packet.body.last_seq,
            received_at: now,
            records,
        };
        let answer = self.store.ingest(incoming).await?;
        // A packet seen before decides nothing new: it is counted as a
        // replay, not as outcomes again.
        let decided: &[RecordAnswer] = if answer.seen_before {
            &[]
        } else {
            &answer.records
        };
        let resolved: &[RecordAnswer] = if answer.seen_before {
            &[]
        } else {
            &answer.resolved
        };
        for record in decided.iter().chain(resolved) {
            self.metrics.record_outcome(record.outcome, record.reason);
            match record.outcome {
                Outcome::Flagged => tracing::warn!(
                    terminal = %terminal.id,
                    seq = record.seq,
                    reason = record.reason.map(Reason::as_str).unwrap_or(""),
                    "record flagged"
                ),
                outcome => tracing::debug!(
                    terminal = %terminal.id,
                    seq = record.seq,
                    outcome = outcome.as_str(),
                    "record"
                ),
            }
        }
        tracing::info!(
            terminal = %terminal.id,
            packet = %packet.id(),
            first_seq = packet.body.first_seq,
            last_seq = packet.body.last_seq,
            acked_through = answer.acked_through,
            seen_before = answer.seen_before,
            "packet ingested"
        );
        self.metrics
            .packet_ingested(packet.body.records.len(), answer.seen_before);
        Ok(PacketAnswer {
            packet: packet.id().to_hex(),
            records: answer.records,
            resolved: answer.resolved,
            acked_through: answer.acked_through,
        })
    }

    /// Loads what the packet's records are checked against.
    async fn knowledge(
        &self,
        terminal: &Terminal,
        packet: &Packet,
    ) -> Result<Knowledge, IngestError> {
        let mut known = Knowledge::default();
        let hashes: HashSet<String> = packet
            .body
            .records
            .iter()
            .flat_map(|record| record.body.inputs.benefits.iter())
            .map(|named| named.hash.to_hex())
            .collect();
        for hash in hashes {
            if let Some(version) = self.benefit(&hash).await? {
                known.benefits.insert(hash, version);
            }
        }
        let credentials: Vec<String> = packet
            .body
            .records
            .iter()
            .map(|record| record.body.credential.hash.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let benefit_ids: Vec<String> = packet
            .body
            .records
            .iter()
            .flat_map(|record| record.body.inputs.benefits.iter())
            .map(|named| named.id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let facts = self.store.record_facts(&credentials, &benefit_ids).await?;
        known.version = facts.version;
        known.credentials = facts.credentials;
        known.entitlements = facts.entitlements;
        known.benefit_groups = facts.benefit_groups;
        let in_packet: HashMap<u64, &SignedRecord> = packet
            .body
            .records
            .iter()
            .map(|record| (record.body.seq, record))
            .collect();
        for record in &packet.body.records {
            let Some(voided) = record.body.voids else {
                continue;
            };
            if let Some(sale) = in_packet.get(&voided) {
                if sale.body.kind == RecordKind::Sale {
                    known
                        .sales
                        .insert(voided, (sale.body.cart.clone(), sale.body.quote.clone()));
                }
                continue;
            }
            if let Some(body) = self.store.record_body(&terminal.id, voided).await? {
                if let Ok(sale) = serde_json::from_str::<shared::wire::record::RecordBody>(&body) {
                    if sale.kind == RecordKind::Sale {
                        known.sales.insert(voided, (sale.cart, sale.quote));
                    }
                }
            }
        }
        Ok(known)
    }

    async fn benefit(&self, hash: &str) -> Result<Option<Arc<BenefitVersion>>, StoreError> {
        if let Ok(cache) = self.benefit_cache.read() {
            if let Some(version) = cache.get(hash) {
                return Ok(Some(Arc::clone(version)));
            }
        }
        let Some(version) = self.store.benefit_version(hash).await? else {
            return Ok(None);
        };
        let version = Arc::new(version);
        if let Ok(mut cache) = self.benefit_cache.write() {
            cache.insert(hash.to_owned(), Arc::clone(&version));
        }
        Ok(Some(version))
    }
}

#[cfg(test)]
mod tests;
