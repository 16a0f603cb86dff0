//! Realistic demo data, through the same paths real data takes: two
//! municipalities (Riga, Jelgava) and the state, a canteen company and a bus
//! carrier, their benefits, a few thousand recipients with cards imported
//! as a provider would, enrolled demo terminals, and a month of
//! transactions that those terminals sign, pack and upload through
//! ingestion, so every record verifies like a real one.
//!
//! The month holds a few planted cases for reconciliation to catch (see
//! `Cases`): one pupil's daily lunch given twice by two offline tills, beyond
//! Riga's zero tolerance and within Jelgava's tolerance of one; a pensioner's
//! card on two carriers' buses 87 s apart; a card blocked as lost and then
//! taken by a validator that had the block. After the demo's ledger run they
//! are open flags, and the settlement of the last complete month leaves the
//! non-payable lunch out.
//!
//! Deterministic: one seed gives the same recipients, card UIDs and taps.
//! Personal data is invented (fake names and personal codes).

use std::collections::HashMap;
use std::fmt;

use jiff::civil::Date;
use jiff::ToSpan;
use shared::mix::SplitMix64 as Rng;
use shared::model::{Benefit, CartLine, Grant, HistoryEntry, Membership};
use shared::rules::{eligible, evaluate, QuoteInput};
use shared::wire::credential::credential_hash;
use shared::wire::keys::{Hash, SigningKey};
use shared::wire::packet::{Packet, PACKET_RECORDS_MAX};
use shared::wire::record::{
    benefit_hash, local_time_of, BenefitRef, CredentialKind, CredentialRef, QuoteInputs,
    RecordBody, RecordKind, RecordType, SignedRecord, RECORD_VERSION,
};

use crate::http::staff::{new_terminal, publish_benefit};
use crate::keys::secret_hash;
use crate::snapshot::{in_scope, terminal_form};
use crate::store::plan::Outcome;
use crate::store::{Group, ImportRow, Party, Terminal};
use crate::AppState;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub recipients: u32,
    pub days: u32,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(String);

impl From<crate::store::StoreError> for DemoError {
    fn from(err: crate::store::StoreError) -> DemoError {
        DemoError(err.to_string())
    }
}
impl From<shared::wire::WireError> for DemoError {
    fn from(err: shared::wire::WireError) -> DemoError {
        DemoError(err.to_string())
    }
}
impl From<crate::http::ApiError> for DemoError {
    fn from(err: crate::http::ApiError) -> DemoError {
        DemoError(err.message().to_owned())
    }
}
impl From<crate::ingest::IngestError> for DemoError {
    fn from(err: crate::ingest::IngestError) -> DemoError {
        DemoError(err.to_string())
    }
}

/// What the demo made, for the operator.
#[derive(Debug, Default)]
pub struct DemoReport {
    pub recipients: u32,
    pub credentials: u32,
    pub records: u64,
    pub accepted: u64,
    pub flagged: u64,
    pub terminals: Vec<(String, String)>,
    pub enrolment_codes: Vec<(String, String, String)>,
    /// A few card UIDs to tap at a demo till, with what they are.
    pub sample_cards: Vec<(String, String)>,
    /// Settlements issued for the last complete month: number and total.
    pub settlements: Vec<(String, String)>,
    /// Flags the reconciliation run raised.
    pub flags: u64,
    /// The cases planted for reconciliation to catch, one line each.
    pub cases: Vec<String>,
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "demo data: {} recipients, {} credentials, {} records ({} accepted, {} flagged)",
            self.recipients, self.credentials, self.records, self.accepted, self.flagged
        )?;
        for (id, label) in &self.terminals {
            writeln!(
                f,
                "demo terminal {id}: {label} (enrolled, key derived from the seed)"
            )?;
        }
        for (terminal, label, code) in &self.enrolment_codes {
            writeln!(f, "enrolment code for {terminal} ({label}): {code}")?;
        }
        for (uid, what) in &self.sample_cards {
            writeln!(f, "card {uid}: {what}")?;
        }
        for case in &self.cases {
            writeln!(f, "planted case: {case}")?;
        }
        writeln!(f, "reconciliation raised {} flags", self.flags)?;
        for (number, total) in &self.settlements {
            writeln!(f, "settlement {number}: {total} EUR")?;
        }
        Ok(())
    }
}

/// Signs taps as the demo terminals' agents would: quoted by the shared
/// engine on what the terminal knew (its snapshot and its own journal).
struct Signer<'a> {
    published: &'a [Benefit],
    hashes: &'a HashMap<String, Hash>,
    zone: &'a jiff::tz::TimeZone,
}

impl Signer<'_> {
    /// One tap of `person` at `terminal`, quoted against snapshot
    /// `snapshot`, appended to the terminal's chain and journal.
    fn tap(
        &self,
        terminal: &mut DemoTerminal,
        person: &Person,
        cart: Vec<CartLine>,
        at: jiff::Timestamp,
        snapshot: u64,
    ) -> Result<(), DemoError> {
        let scope: Vec<Benefit> = self
            .published
            .iter()
            .filter(|b| in_scope(b, &terminal.terminal.categories))
            .map(terminal_form)
            .collect();
        let entitlements: Vec<Grant> = person
            .memberships
            .iter()
            .flat_map(|m| {
                self.published
                    .iter()
                    .filter(|b| {
                        b.groups.contains(&m.group) && in_scope(b, &terminal.terminal.categories)
                    })
                    .map(|b| Grant {
                        benefit: b.id.clone(),
                        valid_from: m.valid_from,
                        valid_to: m.valid_to,
                    })
            })
            .collect();
        let usable: Vec<Benefit> = eligible(&scope, &entitlements, &[], at)
            .into_iter()
            .cloned()
            .collect();
        let history = terminal
            .history
            .get(&person.id)
            .cloned()
            .unwrap_or_default();
        let quote = evaluate(&QuoteInput {
            benefits: &usable,
            grants: &entitlements,
            memberships: &[],
            history: &history,
            cart: &cart,
            now: at,
        });
        terminal.seq += 1;
        let body = RecordBody {
            at,
            cart,
            credential: CredentialRef {
                hash: person.card_hash.clone(),
                kind: CredentialKind::Card,
            },
            idempotency_key: format!("demo-{}-{}", terminal.terminal.id, terminal.seq),
            inputs: QuoteInputs {
                benefits: usable
                    .iter()
                    .map(|b| BenefitRef {
                        hash: self.hashes.get(&b.id).copied().unwrap_or_default(),
                        id: b.id.clone(),
                    })
                    .collect(),
                entitlements,
                history,
                snapshot,
            },
            kind: RecordKind::Sale,
            local_time: local_time_of(at, self.zone),
            merchant: terminal.terminal.merchant.clone(),
            prev: terminal.prev,
            quote: quote.clone(),
            recipient: person.id.clone(),
            seq: terminal.seq,
            terminal: terminal.terminal.id.clone(),
            record_type: RecordType::Record,
            v: RECORD_VERSION,
            voids: None,
        };
        let record = SignedRecord::sign(body, &terminal.key)?;
        terminal.prev = record.hash();
        let journal = terminal.history.entry(person.id.clone()).or_default();
        let mut per_benefit: HashMap<&str, HistoryEntry> = HashMap::new();
        for discount in &quote.discounts {
            let entry = per_benefit
                .entry(discount.benefit.as_str())
                .or_insert(HistoryEntry {
                    at,
                    benefit: discount.benefit.clone(),
                    amount: shared::money::Money::ZERO,
                    count: 0,
                });
            entry.amount += discount.amount;
            entry.count += 1;
        }
        journal.extend(per_benefit.into_values());
        terminal.records.push(record);
        Ok(())
    }
}

/// The cases planted in the demo month so that reconciliation has
/// something to catch, chosen from the seed (a separate stream, so the
/// ordinary taps stay as they were).
struct Cases {
    rng: Rng,
    /// A school day (of the last complete month when the demo reaches it):
    /// two pupils get their one daily lunch at a second till, and a
    /// pensioner's card rides two carriers' buses 87 s apart.
    conflict_day: Option<Date>,
    traveller: Option<usize>,
    /// Mid-window: the card of `lost` is blocked, its owner stops using it,
    /// and a validator that had the block takes it in the evening.
    block_day: Option<Date>,
    lost: Option<usize>,
}

impl Cases {
    fn choose(seed: u64, days: &[Date], today: Date, people: &[Person]) -> Cases {
        let mut rng = Rng(seed ^ 0x00C0_FFEE_D15C_0DE5);
        let school_days: Vec<Date> = days
            .iter()
            .copied()
            .filter(|day| day.weekday().to_monday_one_offset() <= 5)
            .collect();
        let last_month = |day: &&Date| day.year() != today.year() || day.month() != today.month();
        let conflict_day = school_days
            .iter()
            .rfind(last_month)
            .or(school_days.first())
            .copied();
        let block_day = days.get(days.len() / 2).copied();
        // Pensioners other than the sample card (the first) and the two
        // cards blocked after the month (the last two people).
        let candidates: Vec<usize> = people
            .iter()
            .enumerate()
            .take(people.len().saturating_sub(2))
            .filter(|(_, p)| p.persona == Persona::Pensioner)
            .skip(1)
            .map(|(idx, _)| idx)
            .collect();
        let (traveller, lost) = if candidates.len() >= 2 {
            let first = rng.below(candidates.len() as u64) as usize;
            let second =
                (first + 1 + rng.below(candidates.len() as u64 - 1) as usize) % candidates.len();
            (Some(candidates[first]), Some(candidates[second]))
        } else {
            (None, None)
        };
        Cases {
            rng,
            conflict_day,
            traveller,
            block_day,
            lost,
        }
    }
}

fn benefit(json: serde_json::Value) -> Result<Benefit, DemoError> {
    serde_json::from_value(json).map_err(|err| DemoError(format!("demo benefit: {err}")))
}

/// The demo's benefits, as their providers would define them.
fn benefits() -> Result<Vec<Benefit>, DemoError> {
    Ok(vec![
        benefit(serde_json::json!({
            "id": "riga-pupil-lunch", "provider": "riga",
            "label": {"lv": "Brīvpusdienas 1.-4. klasei", "en": "Free lunch, grades 1-4"},
            "groups": ["riga-pupil-1-4"], "categories": ["meal.lunch"],
            "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}],
            "weekdays": [1, 2, 3, 4, 5], "priority": 10
        }))?,
        benefit(serde_json::json!({
            "id": "jelgava-lunch-half", "provider": "jelgava",
            "label": {"lv": "Pusdienas -50% (līdz 5 EUR)", "en": "Lunch 50% off, at most 5 EUR"},
            "groups": ["jelgava-pupil-1-4"], "categories": ["meal.lunch"],
            "discount": {"percent": "50"}, "max_per_transaction": "5.00",
            "limits": [{"period": "day", "max_count": 1}], "priority": 20
        }))?,
        benefit(serde_json::json!({
            "id": "riga-large-family-lunch", "provider": "riga",
            "label": {"lv": "Daudzbērnu ģimenes pusdienas par 1 EUR", "en": "Large family lunch for 1 EUR"},
            "groups": ["riga-large-family"], "categories": ["meal.lunch"],
            "discount": {"fixed_price": "1.00"}, "limits": [{"period": "day", "max_count": 1}],
            "priority": 30
        }))?,
        benefit(serde_json::json!({
            "id": "state-pensioner-ride", "provider": "state",
            "label": {"lv": "Pensionāra brauciens -0,70 EUR", "en": "Pensioner ride, 0.70 off"},
            "groups": ["state-pensioner"], "categories": ["transport.bus"],
            "discount": {"amount": "0.70"}, "priority": 50, "funding": "loss_compensation"
        }))?,
        benefit(serde_json::json!({
            "id": "riga-transport-cap", "provider": "riga",
            "label": {"lv": "Bezmaksas braucieni līdz 10 EUR mēnesī", "en": "Free rides up to 10 EUR a month"},
            "groups": ["riga-large-family"], "categories": ["transport.bus"],
            "discount": {"percent": "100"}, "limits": [{"period": "month", "max_amount": "10.00"}],
            "priority": 40
        }))?,
    ])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Persona {
    RigaPupil,
    JelgavaPupil,
    Pensioner,
    RigaLargeFamily,
}

struct Person {
    id: String,
    persona: Persona,
    card_uid: String,
    card_hash: String,
    memberships: Vec<Membership>,
}

struct DemoTerminal {
    terminal: Terminal,
    key: SigningKey,
    records: Vec<SignedRecord>,
    prev: Hash,
    seq: u64,
    /// The terminal's own journal per recipient, as the agent would count it.
    history: HashMap<String, Vec<HistoryEntry>>,
}

/// Fills the store named by `state` with demo data.
pub async fn fill(state: &AppState, options: &DemoOptions) -> Result<DemoReport, DemoError> {
    let store = &state.store;
    if !store.terminals(Some("skolas-edinasana")).await?.is_empty() {
        return Err(DemoError(
            "this database already has demo data (merchant skolas-edinasana has terminals); use a fresh data directory".into(),
        ));
    }
    let mut rng = Rng(options.seed);
    let mut report = DemoReport::default();
    for (id, name) in [
        ("riga", "Rīgas valstspilsētas pašvaldība"),
        ("jelgava", "Jelgavas valstspilsētas pašvaldība"),
        ("state", "Valsts sociālās apdrošināšanas aģentūra"),
    ] {
        store
            .upsert_provider(&Party {
                id: id.into(),
                name: name.into(),
            })
            .await?;
    }
    for (id, name) in [
        ("skolas-edinasana", "SIA Skolas ēdināšana"),
        ("autobusu-parks", "AS Autobusu parks"),
        ("jelgavas-autobusi", "SIA Jelgavas autobusu parks"),
    ] {
        store
            .upsert_merchant(&Party {
                id: id.into(),
                name: name.into(),
            })
            .await?;
    }
    for (id, provider, label) in [
        ("riga-pupil-1-4", "riga", "Rīgas skolēni, 1.-4. klase"),
        ("riga-large-family", "riga", "Rīgas daudzbērnu ģimenes"),
        (
            "jelgava-pupil-1-4",
            "jelgava",
            "Jelgavas skolēni, 1.-4. klase",
        ),
        ("state-pensioner", "state", "Pensionāri"),
    ] {
        store
            .upsert_group(&Group {
                id: id.into(),
                provider: provider.into(),
                label: label.into(),
            })
            .await?;
    }
    let mut published = Vec::new();
    for definition in benefits()? {
        let provider = definition.provider.clone();
        published.push(publish_benefit(state, &provider, definition).await?.benefit);
    }

    // Recipients: pseudonymous references, one card each, some an eID too.
    let now = state.clock.now();
    let today = now
        .to_zoned(jiff::tz::TimeZone::get("Europe/Riga").unwrap_or(jiff::tz::TimeZone::UTC))
        .date();
    let school_year_start =
        Date::new(today.year() - i16::from(today.month() < 9), 9, 1).unwrap_or(today);
    let mut people = Vec::new();
    let mut rows: HashMap<&'static str, Vec<ImportRow>> = HashMap::new();
    let first_names = [
        "Anna", "Jānis", "Marta", "Pēteris", "Laura", "Kārlis", "Elza", "Roberts",
    ];
    let last_names = [
        "Bērziņš",
        "Kalniņa",
        "Ozols",
        "Liepa",
        "Jansone",
        "Krūmiņš",
        "Zariņa",
    ];
    for idx in 0..options.recipients {
        let persona = match rng.below(100) {
            0..40 => Persona::RigaPupil,
            40..60 => Persona::JelgavaPupil,
            60..85 => Persona::Pensioner,
            _ => Persona::RigaLargeFamily,
        };
        let (provider, group): (&'static str, &str) = match persona {
            Persona::RigaPupil => ("riga", "riga-pupil-1-4"),
            Persona::JelgavaPupil => ("jelgava", "jelgava-pupil-1-4"),
            Persona::Pensioner => ("state", "state-pensioner"),
            Persona::RigaLargeFamily => ("riga", "riga-large-family"),
        };
        let id = format!("R{:04}{:06X}", idx, rng.next_u64() & 0xFF_FFFF);
        let card_uid = format!("04{:012X}", rng.next_u64() & 0xFFFF_FFFF_FFFF);
        let card_hash =
            credential_hash(&state.keys.credential_key, CredentialKind::Card, &card_uid);
        let membership = Membership {
            group: group.to_owned(),
            valid_from: Some(school_year_start),
            valid_to: None,
        };
        let provider_rows = rows.entry(provider).or_default();
        provider_rows.push(ImportRow::Recipient {
            recipient: id.clone(),
            personal_code: Some(format!(
                "{:02}{:02}{:02}-{:05}",
                1 + rng.below(28),
                1 + rng.below(12),
                rng.below(100),
                rng.below(100_000)
            )),
            name: Some(format!(
                "{} {}",
                first_names[rng.below(first_names.len() as u64) as usize],
                last_names[rng.below(last_names.len() as u64) as usize]
            )),
        });
        provider_rows.push(ImportRow::Credential {
            recipient: id.clone(),
            kind: CredentialKind::Card,
            hash: card_hash.clone(),
        });
        report.credentials += 1;
        if rng.chance(10) {
            let eid = format!("PA{:07}", rng.below(10_000_000));
            provider_rows.push(ImportRow::Credential {
                recipient: id.clone(),
                kind: CredentialKind::Eid,
                hash: credential_hash(&state.keys.credential_key, CredentialKind::Eid, &eid),
            });
            report.credentials += 1;
        }
        provider_rows.push(ImportRow::Membership {
            recipient: id.clone(),
            membership: membership.clone(),
        });
        people.push(Person {
            id,
            persona,
            card_uid,
            card_hash,
            memberships: vec![membership],
        });
    }
    for (provider, provider_rows) in rows {
        store.import(provider, provider_rows, None).await?;
    }
    report.recipients = options.recipients;
    for persona in [
        Persona::RigaPupil,
        Persona::JelgavaPupil,
        Persona::Pensioner,
        Persona::RigaLargeFamily,
    ] {
        if let Some(person) = people.iter().find(|p| p.persona == persona) {
            let what = match persona {
                Persona::RigaPupil => "Riga pupil (free lunch)",
                Persona::JelgavaPupil => "Jelgava pupil (lunch 50% off)",
                Persona::Pensioner => "pensioner (0.70 off a bus ride)",
                Persona::RigaLargeFamily => {
                    "Riga large family (1 EUR lunch, free rides to 10 EUR a month)"
                }
            };
            report.sample_cards.push((
                person.card_uid.clone(),
                format!("{what}, recipient {}", person.id),
            ));
        }
    }

    // Demo terminals, enrolled with keys derived from the seed.
    let mut terminals = Vec::new();
    for (idx, (merchant, label, categories)) in [
        (
            "skolas-edinasana",
            "Rīgas 1. sākumskolas kase",
            vec!["meal".to_owned()],
        ),
        (
            "skolas-edinasana",
            "Jelgavas sākumskolas kase",
            vec!["meal".to_owned()],
        ),
        (
            "autobusu-parks",
            "Autobuss 12, validators",
            vec!["transport".to_owned()],
        ),
        (
            "autobusu-parks",
            "Autobuss 37, validators",
            vec!["transport".to_owned()],
        ),
        (
            "jelgavas-autobusi",
            "Starppilsētu autobuss Jelgava-Rīga, validators",
            vec!["transport".to_owned()],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let code = new_terminal(state, merchant, label, categories).await?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(
            &Hash::of(format!("demo-terminal-{}-{idx}", options.seed).as_bytes()).0,
        );
        let key = SigningKey::from_seed(&seed)?;
        let terminal = store
            .enrol(
                &secret_hash(&code.code),
                &key.public_key().to_base64(),
                None,
                now,
            )
            .await?
            .map_err(|refusal| DemoError(format!("enrolling a demo terminal: {refusal:?}")))?;
        report
            .terminals
            .push((terminal.id.clone(), label.to_owned()));
        terminals.push(DemoTerminal {
            terminal,
            key,
            records: Vec::new(),
            prev: Hash::GENESIS,
            seq: 0,
            history: HashMap::new(),
        });
    }
    for (merchant, label, category) in [
        ("skolas-edinasana", "Ēdnīcas kase (demo aģents)", "meal"),
        ("autobusu-parks", "Validators (demo aģents)", "transport"),
    ] {
        let code = new_terminal(state, merchant, label, vec![category.to_owned()]).await?;
        report
            .enrolment_codes
            .push((code.terminal, label.to_owned(), code.code));
    }

    // A month of taps, signed by the terminal that saw them.
    let version = store.version().await?;
    let hashes: HashMap<String, Hash> = published
        .iter()
        .map(|b| Ok((b.id.clone(), benefit_hash(&terminal_form(b))?)))
        .collect::<Result<_, shared::wire::WireError>>()?;
    let zone = jiff::tz::TimeZone::get("Europe/Riga").unwrap_or(jiff::tz::TimeZone::UTC);
    let signer = Signer {
        published: &published,
        hashes: &hashes,
        zone: &zone,
    };
    let local = |day: Date, hour: i8, minute: i8, second: i8| {
        day.at(hour, minute, second, 0)
            .to_zoned(zone.clone())
            .map(|zoned| zoned.timestamp())
            .map_err(|err| DemoError(err.to_string()))
    };
    let days: Vec<Date> = (1..=options.days)
        .rev()
        .map(|day_back| {
            today
                .checked_sub(i64::from(day_back).days())
                .unwrap_or(today)
        })
        .collect();
    let mut cases = Cases::choose(options.seed, &days, today, &people);
    // The lost card is blocked now, so its block has a snapshot version;
    // the ordinary taps quote against the version before it, as tills that
    // have not synced since would.
    let blocked_version = match cases.lost {
        Some(idx) => store.block_credential(&people[idx].card_hash).await?,
        None => None,
    };
    for &day in &days {
        let weekday = day.weekday().to_monday_one_offset();
        for (idx, person) in people.iter().enumerate() {
            if cases.lost == Some(idx) && cases.block_day.is_some_and(|block| day > block) {
                // Its owner reported the card lost and no longer has it.
                continue;
            }
            let (terminal_idx, hour, minute, cart, percent) = match person.persona {
                Persona::RigaPupil if weekday <= 5 => (0, 11, 30, lunch("2.50"), 85),
                Persona::JelgavaPupil if weekday <= 5 => (1, 12, 0, lunch("3.00"), 85),
                Persona::RigaLargeFamily if weekday <= 5 && rng.chance(50) => {
                    (0, 13, 0, lunch("3.20"), 40)
                }
                Persona::RigaLargeFamily => (2 + (person.id.len() % 2), 8, 0, ride(), 40),
                Persona::Pensioner => (
                    2 + usize::from(person.card_uid.ends_with(['0', '2', '4', '6', '8'])),
                    9,
                    0,
                    ride(),
                    40,
                ),
                _ => continue,
            };
            if !rng.chance(percent) {
                continue;
            }
            let at_local = day
                .at(
                    hour,
                    minute + (rng.below(50) as i8).min(59 - minute),
                    rng.below(60) as i8,
                    0,
                )
                .to_zoned(zone.clone())
                .map_err(|err| DemoError(err.to_string()))?;
            let at = at_local.timestamp();
            signer.tap(&mut terminals[terminal_idx], person, cart, at, version)?;
        }
        // The planted cases of the day (see `Cases`).
        if Some(day) == cases.conflict_day {
            for (persona, usual, other, hour, minute, price) in [
                (Persona::RigaPupil, 0, 1, 12, 55, "2.50"),
                (Persona::JelgavaPupil, 1, 0, 13, 5, "3.00"),
            ] {
                // A pupil who had lunch at the usual till today.
                let had_lunch = |p: &&Person| {
                    p.persona == persona
                        && terminals[usual].history.get(&p.id).is_some_and(|entries| {
                            entries
                                .iter()
                                .any(|e| e.at.to_zoned(zone.clone()).date() == day)
                        })
                };
                let start = cases.rng.below(people.len() as u64) as usize;
                let Some(person) = people[start..]
                    .iter()
                    .chain(&people[..start])
                    .find(had_lunch)
                else {
                    continue;
                };
                let at = local(day, hour, minute, 0)?;
                signer.tap(&mut terminals[other], person, lunch(price), at, version)?;
                report.cases.push(format!(
                    "{day}: pupil {} had lunch at {} and again at {} (offline tills of one merchant)",
                    person.id, terminals[usual].terminal.label, terminals[other].terminal.label
                ));
            }
            if let Some(person) = cases.traveller.map(|idx| &people[idx]) {
                let city_bus =
                    2 + usize::from(person.card_uid.ends_with(['0', '2', '4', '6', '8']));
                signer.tap(
                    &mut terminals[city_bus],
                    person,
                    ride(),
                    local(day, 17, 20, 5)?,
                    version,
                )?;
                signer.tap(
                    &mut terminals[4],
                    person,
                    ride(),
                    local(day, 17, 21, 32)?,
                    version,
                )?;
                report.cases.push(format!(
                    "{day}: the pensioner card of {} rode {} at 17:20 and {} 87 s later (impossible travel)",
                    person.id, terminals[city_bus].terminal.label, terminals[4].terminal.label
                ));
            }
        }
        if Some(day) == cases.block_day {
            if let (Some(person), Some(blocked)) =
                (cases.lost.map(|idx| &people[idx]), blocked_version)
            {
                // A validator that already had the block in its snapshot
                // still gave the discount: it ignored its deny list.
                signer.tap(
                    &mut terminals[3],
                    person,
                    ride(),
                    local(day, 18, 45, 0)?,
                    blocked,
                )?;
                report.cases.push(format!(
                    "{day}: the card of {} was blocked as lost in snapshot version {blocked}, then used at {} that already had the block (blocked credential)",
                    person.id, terminals[3].terminal.label
                ));
            }
        }
    }
    for terminal in &mut terminals {
        let records = std::mem::take(&mut terminal.records);
        for chunk in records.chunks(PACKET_RECORDS_MAX) {
            let packet = Packet::build(&terminal.terminal.id, chunk.to_vec(), now, &terminal.key)?;
            let answer = state
                .ingestor
                .ingest_packet(&terminal.terminal, packet, now)
                .await?;
            for record in &answer.records {
                report.records += 1;
                match record.outcome {
                    Outcome::Accepted => report.accepted += 1,
                    _ => report.flagged += 1,
                }
            }
        }
    }
    // Two lost cards, blocked after the month: they reach the deny list.
    // The last two recipients, so that the sample cards above stay usable.
    for person in people.iter().rev().take(2) {
        store.block_credential(&person.card_hash).await?;
        report.sample_cards.push((
            person.card_uid.clone(),
            format!("blocked (lost card), recipient {}", person.id),
        ));
    }
    // Jelgava tolerates one extra lunch a day from offline tills (paid,
    // flagged); Riga has no policy, so its second lunch is not payable.
    store
        .set_overuse_policy(
            "jelgava-lunch-half",
            &crate::reconcile::OverusePolicy {
                tolerance_count: 1,
                tolerance_amount: shared::money::Money::ZERO,
            },
        )
        .await?;
    // Reconcile the month across terminals and settle the last complete
    // month, as an operator would, so that a fresh demo shows flags,
    // settlements and e-invoices.
    report.flags = crate::ledger::run(store.as_ref(), now)
        .await
        .map_err(|err| DemoError(err.to_string()))?
        .flags_raised;
    for (role, details) in invoice_details() {
        let text = serde_json::to_string(&details).map_err(|err| DemoError(err.to_string()))?;
        store
            .set_invoice_party(role, &details.party.id, &text)
            .await?;
    }
    let last_month = today.first_of_month().yesterday().unwrap_or(today);
    let period = crate::settlement::SettlementPeriod::month(last_month.year(), last_month.month())
        .map_err(|err| DemoError(err.to_string()))?;
    for stored in crate::ledger::issue(store.as_ref(), period, None, now)
        .await
        .map_err(|err| DemoError(err.to_string()))?
    {
        report.settlements.push((
            stored.settlement.number.clone(),
            stored.settlement.total.to_string(),
        ));
    }
    Ok(report)
}

/// Invoice details of the demo's merchants and providers (made-up
/// registration numbers, a valid demo IBAN).
fn invoice_details() -> Vec<(&'static str, crate::ledger::InvoiceDetails)> {
    use crate::einvoice::{Address, EndpointScheme, Party as InvoiceParty};
    let party =
        |id: &str, name: &str, registration: &str, street: &str, city: &str, postal: &str| {
            InvoiceParty {
                id: id.into(),
                name: name.into(),
                registration_number: registration.into(),
                vat_id: Some(format!("LV{registration}")),
                address: Address {
                    street: street.into(),
                    city: city.into(),
                    postal_code: postal.into(),
                    country: "LV".into(),
                },
                endpoint_scheme: EndpointScheme::LvRegistration,
                email: None,
            }
        };
    let merchant = |party: InvoiceParty| crate::ledger::InvoiceDetails {
        party,
        iban: Some("LV80BANK0000435195001".into()),
        bic: Some("BANKLV22".into()),
        payment_days: None,
        buyer_reference: None,
    };
    let provider = |party: InvoiceParty| crate::ledger::InvoiceDetails {
        party,
        iban: None,
        bic: None,
        payment_days: None,
        buyer_reference: None,
    };
    vec![
        (
            "merchant",
            merchant(party(
                "skolas-edinasana",
                "SIA Skolas ēdināšana",
                "40003000001",
                "Brīvības iela 1",
                "Rīga",
                "LV-1010",
            )),
        ),
        (
            "merchant",
            merchant(party(
                "autobusu-parks",
                "AS Autobusu parks",
                "40003000002",
                "Kleistu iela 28",
                "Rīga",
                "LV-1067",
            )),
        ),
        (
            "merchant",
            merchant(party(
                "jelgavas-autobusi",
                "SIA Jelgavas autobusu parks",
                "40003000003",
                "Rūpniecības iela 2",
                "Jelgava",
                "LV-3008",
            )),
        ),
        (
            "provider",
            provider(party(
                "riga",
                "Rīgas valstspilsētas pašvaldība",
                "90011524360",
                "Rātslaukums 1",
                "Rīga",
                "LV-1539",
            )),
        ),
        (
            "provider",
            provider(party(
                "jelgava",
                "Jelgavas valstspilsētas pašvaldība",
                "90000042516",
                "Lielā iela 11",
                "Jelgava",
                "LV-3001",
            )),
        ),
        (
            "provider",
            provider(party(
                "state",
                "Valsts sociālās apdrošināšanas aģentūra",
                "90001636522",
                "Lāčplēša iela 70a",
                "Rīga",
                "LV-1011",
            )),
        ),
    ]
}

fn lunch(price: &str) -> Vec<CartLine> {
    vec![CartLine {
        sku: "LUNCH".into(),
        category: "meal.lunch".into(),
        unit_price: price.parse().unwrap_or_default(),
        qty: 1,
    }]
}

fn ride() -> Vec<CartLine> {
    vec![CartLine {
        sku: "RIDE-60".into(),
        category: "transport.bus".into(),
        unit_price: "1.50".parse().unwrap_or_default(),
        qty: 1,
    }]
}
