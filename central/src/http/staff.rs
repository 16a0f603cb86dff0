//! The staff API: providers, merchants and administrators, each with a
//! bearer token bound to a role and scope (`docs/central-api.md`).
//!
//! Scoping rule: a provider token sees and changes only its provider's
//! groups, benefits, recipients it is related to and records its benefits
//! funded; a merchant token only its terminals and their records; the admin
//! token everything. A request outside the scope is 403 (or 404 where even
//! the existence of the object is the provider's business).

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shared::model::Benefit;
use shared::validate::{is_valid_category, is_valid_id};
use shared::wire::canonical;
use shared::wire::credential::credential_hash;
use shared::wire::record::{benefit_hash, CredentialKind};

use super::{parse_json, ApiError, Staff};
use crate::import::{self, Format, Kind};
use crate::keys::{random_token, secret_hash};
use crate::snapshot::terminal_form;
use crate::store::{CredentialStatus, Group, NewTerminal, Party, RecordFilter, Role, Terminal};
use crate::AppState;

fn admin_only(staff: &Staff) -> Result<(), ApiError> {
    match staff.role {
        Role::Admin => Ok(()),
        _ => Err(ApiError::forbidden("this needs the admin token")),
    }
}

/// Which side of a sale a scoped request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Provider,
    Merchant,
}

impl Side {
    pub(super) fn name(self) -> &'static str {
        match self {
            Side::Provider => "provider",
            Side::Merchant => "merchant",
        }
    }
}

/// The provider or merchant a request is for: the token's own (the named
/// one must be it), or the one an admin names. `verb` says what a token
/// cannot do for another ("act for"); `wrong_role` is the answer to a
/// token of the other side.
pub(super) fn scoped_party(
    staff: &Staff,
    named: Option<&str>,
    side: Side,
    verb: &str,
    wrong_role: &str,
) -> Result<String, ApiError> {
    let own = match (&staff.role, side) {
        (Role::Provider(own), Side::Provider) | (Role::Merchant(own), Side::Merchant) => own,
        (Role::Admin, _) => {
            return match named {
                Some(named) => Ok(named.to_owned()),
                None => Err(ApiError::bad_request(
                    "malformed",
                    format!("{0}: an admin must name the {0}", side.name()),
                )),
            }
        }
        _ => return Err(ApiError::forbidden(wrong_role.to_owned())),
    };
    match named {
        Some(named) if named != own => Err(ApiError::forbidden(format!(
            "{}: a token of {own:?} cannot {verb} {named:?}",
            side.name()
        ))),
        _ => Ok(own.clone()),
    }
}

/// The provider a request acts for: a provider token's own, or the one an
/// admin names.
fn acting_provider(staff: &Staff, named: Option<&str>) -> Result<String, ApiError> {
    scoped_party(
        staff,
        named,
        Side::Provider,
        "act for",
        "this needs a provider token",
    )
}

fn acting_merchant(staff: &Staff, named: Option<&str>) -> Result<String, ApiError> {
    scoped_party(
        staff,
        named,
        Side::Merchant,
        "act for",
        "this needs a merchant token",
    )
}

/// A provider token's own provider; `None` for the others (who see all).
fn own_provider(staff: &Staff) -> Option<&str> {
    match &staff.role {
        Role::Provider(own) => Some(own.as_str()),
        _ => None,
    }
}

/// An id field: what `shared` accepts as an id.
fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "malformed",
        format!("{field}: must be 1-128 printable characters without spaces"),
    ))
}

/// A name or label field: 1-200 bytes.
pub(super) fn check_label(field: &str, text: &str) -> Result<(), ApiError> {
    if text.is_empty() || text.len() > 200 {
        return Err(ApiError::bad_request(
            "malformed",
            format!("{field}: must be 1-200 bytes"),
        ));
    }
    Ok(())
}

#[derive(Serialize)]
pub struct Me {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    label: String,
}

pub async fn me(staff: Staff) -> Json<Me> {
    Json(Me {
        role: staff.role.kind(),
        scope: staff.role.scope().map(str::to_owned),
        label: staff.label,
    })
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyJson {
    id: String,
    name: String,
}

fn party_list(parties: Vec<Party>) -> Json<Vec<PartyJson>> {
    Json(
        parties
            .into_iter()
            .map(|p| PartyJson {
                id: p.id,
                name: p.name,
            })
            .collect(),
    )
}

/// The party an admin's `PUT` names, checked.
fn party_body(staff: &Staff, body: &[u8]) -> Result<Party, ApiError> {
    admin_only(staff)?;
    let party: PartyJson = parse_json(body)?;
    check_id("id", &party.id)?;
    check_label("name", &party.name)?;
    Ok(Party {
        id: party.id,
        name: party.name,
    })
}

pub async fn providers(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<PartyJson>>, ApiError> {
    Ok(party_list(state.store.providers().await?))
}

pub async fn put_provider(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let party = party_body(&staff, &body)?;
    state.store.upsert_provider(&party).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn merchants(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Vec<PartyJson>>, ApiError> {
    Ok(party_list(state.store.merchants().await?))
}

pub async fn put_merchant(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let party = party_body(&staff, &body)?;
    state.store.upsert_merchant(&party).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupJson {
    id: String,
    #[serde(default)]
    provider: Option<String>,
    label: String,
}

pub async fn groups(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<GroupJson>>, ApiError> {
    let provider = own_provider(&staff);
    Ok(Json(
        state
            .store
            .groups(provider)
            .await?
            .into_iter()
            .map(|g| GroupJson {
                id: g.id,
                provider: Some(g.provider),
                label: g.label,
            })
            .collect(),
    ))
}

pub async fn put_group(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let group: GroupJson = parse_json(&body)?;
    let provider = acting_provider(&staff, group.provider.as_deref())?;
    check_id("id", &group.id)?;
    check_label("label", &group.label)?;
    state
        .store
        .upsert_group(&Group {
            id: group.id,
            provider,
            label: group.label,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct BenefitJson {
    benefit: Benefit,
    /// The hash terminals name in records (of the form without groups).
    hash: String,
    version: u64,
}

/// Benefits are public (open data); a provider token lists its own.
pub async fn benefits(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<BenefitJson>>, ApiError> {
    let provider = own_provider(&staff);
    Ok(Json(
        state
            .store
            .benefits(provider)
            .await?
            .into_iter()
            .map(|b| BenefitJson {
                benefit: b.benefit,
                hash: b.terminal_hash,
                version: b.published_seq,
            })
            .collect(),
    ))
}

/// Publishes a benefit version: validated by `shared`, groups must be the
/// provider's own. The same definition again changes nothing.
pub async fn put_benefit(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<BenefitJson>, ApiError> {
    let benefit: Benefit = parse_json(&body)?;
    if benefit.id != id {
        return Err(ApiError::bad_request(
            "malformed",
            format!("id: {:?} differs from the path's {id:?}", benefit.id),
        ));
    }
    let provider = acting_provider(&staff, Some(&benefit.provider))?;
    let stored = publish_benefit(&state, &provider, benefit).await?;
    Ok(Json(BenefitJson {
        hash: stored.terminal_hash,
        version: stored.published_seq,
        benefit: stored.benefit,
    }))
}

/// Validates and publishes a benefit for `provider` (also used by the CLI and the demo).
pub async fn publish_benefit(
    state: &AppState,
    provider: &str,
    benefit: Benefit,
) -> Result<crate::store::StoredBenefit, ApiError> {
    if let Err(problems) = shared::validate::benefit("benefit", &benefit) {
        return Err(ApiError::bad_request("invalid", problems.to_string()));
    }
    let own_groups: HashSet<String> = state
        .store
        .groups(Some(provider))
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    for (idx, group) in benefit.groups.iter().enumerate() {
        if !own_groups.contains(group) {
            return Err(ApiError::bad_request(
                "invalid",
                format!("benefit.groups[{idx}]: {group:?} is not a group of provider {provider:?}"),
            ));
        }
    }
    let visible = terminal_form(&benefit);
    let json = canonical::to_vec(&visible)
        .map_err(|err| ApiError::bad_request("invalid", err.to_string()))?;
    let hash =
        benefit_hash(&visible).map_err(|err| ApiError::bad_request("invalid", err.to_string()))?;
    let stored = state
        .store
        .publish_benefit(&benefit, &String::from_utf8_lossy(&json), &hash.to_hex())
        .await?;
    tracing::info!(benefit = %benefit.id, provider, version = stored.published_seq, "benefit published");
    Ok(stored)
}

#[derive(Serialize)]
pub struct TerminalJson {
    id: String,
    merchant: String,
    label: String,
    categories: Vec<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    acked_through: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock_skew_s: Option<i64>,
}

impl From<Terminal> for TerminalJson {
    fn from(t: Terminal) -> TerminalJson {
        TerminalJson {
            key_id: t
                .public_key
                .as_deref()
                .and_then(|k| shared::wire::keys::PublicKey::from_base64(k).ok())
                .map(|k| k.key_id()),
            id: t.id,
            merchant: t.merchant,
            label: t.label,
            categories: t.categories,
            status: t.status.as_str(),
            acked_through: t.acked_through,
            last_seen: t.last_seen,
            clock_skew_s: t.clock_skew_s,
        }
    }
}

pub async fn terminals(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<TerminalJson>>, ApiError> {
    let merchant = match &staff.role {
        Role::Merchant(own) => Some(own.as_str()),
        Role::Admin => None,
        Role::Provider(_) => {
            return Err(ApiError::forbidden("terminals are the merchants' business"))
        }
    };
    Ok(Json(
        state
            .store
            .terminals(merchant)
            .await?
            .into_iter()
            .map(TerminalJson::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTerminalJson {
    #[serde(default)]
    merchant: Option<String>,
    label: String,
    categories: Vec<String>,
}

#[derive(Serialize)]
pub struct EnrolCodeJson {
    pub terminal: String,
    pub code: String,
    pub expires_at: Timestamp,
}

pub async fn create_terminal(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<(StatusCode, Json<EnrolCodeJson>), ApiError> {
    let request: NewTerminalJson = parse_json(&body)?;
    let merchant = acting_merchant(&staff, request.merchant.as_deref())?;
    let code = new_terminal(&state, &merchant, &request.label, request.categories).await?;
    Ok((StatusCode::CREATED, Json(code)))
}

/// Creates a pending terminal and its one-time enrolment code (also used by the CLI and the demo).
pub async fn new_terminal(
    state: &AppState,
    merchant: &str,
    label: &str,
    categories: Vec<String>,
) -> Result<EnrolCodeJson, ApiError> {
    check_label("label", label)?;
    if categories.is_empty() {
        return Err(ApiError::bad_request(
            "malformed",
            "categories: must name at least one category",
        ));
    }
    for (idx, category) in categories.iter().enumerate() {
        if !is_valid_category(category) {
            return Err(ApiError::bad_request(
                "malformed",
                format!("categories[{idx}]: {category:?} is not a category (e.g. \"meal.lunch\")"),
            ));
        }
    }
    let code = enrol_code()
        .map_err(|err| ApiError::from(crate::store::StoreError::Other(err.to_string())))?;
    let expires_at = state
        .clock
        .now()
        .checked_add(state.config.enrol_code_ttl)
        .unwrap_or(Timestamp::MAX);
    let terminal = state
        .store
        .create_terminal(&NewTerminal {
            merchant: merchant.to_owned(),
            label: label.to_owned(),
            categories,
            code_hash: secret_hash(&code),
            code_expires_at: expires_at,
        })
        .await?;
    tracing::info!(%terminal, merchant, "terminal created");
    Ok(EnrolCodeJson {
        terminal,
        code,
        expires_at,
    })
}

/// `ENR-XXXX-XXXX-XXXX`: 60 random bits in an alphabet without look-alikes,
/// easy to type at a till.
pub fn enrol_code() -> Result<String, crate::keys::KeyError> {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let random = random_token(12)?;
    let bytes: Vec<u8> = random
        .bytes()
        .take(12)
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()])
        .collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(format!(
        "ENR-{}-{}-{}",
        &text[0..4],
        &text[4..8],
        &text[8..12]
    ))
}

pub async fn revoke_terminal(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let terminal = state.store.terminal(&id).await?;
    let visible = match (&staff.role, &terminal) {
        (Role::Admin, Some(_)) => true,
        (Role::Merchant(own), Some(t)) => t.merchant == *own,
        _ => false,
    };
    if !visible {
        return Err(ApiError::not_found(format!("terminal {id:?} not found")));
    }
    state.store.revoke_terminal(&id, state.clock.now()).await?;
    tracing::warn!(terminal = %id, by = %staff.label, "terminal revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    provider: Option<String>,
}

#[derive(Serialize)]
pub struct ImportJson {
    rows: u64,
    recipients_changed: u64,
    credentials_changed: u64,
    memberships_changed: u64,
    grants_changed: u64,
    version: u64,
}

#[derive(Serialize)]
struct ImportErrorsJson {
    error: ImportErrorFields,
}

#[derive(Serialize)]
struct ImportErrorFields {
    code: &'static str,
    message: String,
    rows: Vec<String>,
}

/// Builds the context a provider's import is checked against.
pub async fn import_context(state: &AppState, provider: &str) -> Result<import::Context, ApiError> {
    Ok(import::Context {
        provider: provider.to_owned(),
        groups: state
            .store
            .groups(Some(provider))
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect(),
        benefits: state
            .store
            .benefits(Some(provider))
            .await?
            .into_iter()
            .map(|b| b.benefit.id)
            .collect(),
        credential_key: state.keys.credential_key.clone(),
    })
}

/// `POST /api/v1/import/{kind}`: CSV (`text/csv`) or JSON Lines; whole or nothing.
pub async fn import(
    State(state): State<AppState>,
    staff: Staff,
    Path(kind): Path<String>,
    query: Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let provider = acting_provider(&staff, query.provider.as_deref())?;
    let kind = Kind::parse(&kind).ok_or_else(|| {
        ApiError::not_found(format!(
            "import kind {kind:?}: use recipients, credentials, memberships, grants or guardians"
        ))
    })?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = if content_type.starts_with("text/csv") {
        Format::Csv
    } else if content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/jsonl")
    {
        Format::JsonLines
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type: use text/csv or application/x-ndjson",
        ));
    };
    let context = import_context(&state, &provider).await?;
    let rows = match tokio::task::spawn_blocking(move || {
        import::parse(kind, format, body.as_ref(), &context, None)
    })
    .await
    .map_err(|err| ApiError::from(crate::store::StoreError::Other(err.to_string())))?
    {
        Ok(rows) => rows,
        Err(errors) => {
            let mut rows: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
            if errors.more {
                rows.push(format!("… and more (first {} shown)", import::ERRORS_MAX));
            }
            let body = ImportErrorsJson {
                error: ImportErrorFields {
                    code: "invalid_rows",
                    message: "the file was not imported; nothing changed".into(),
                    rows,
                },
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
    };
    let summary = state.store.import(&provider, rows, None).await?;
    tracing::info!(
        provider,
        ?kind,
        rows = summary.rows,
        version = summary.version,
        "import applied"
    );
    Ok(Json(ImportJson {
        rows: summary.rows,
        recipients_changed: summary.recipients_changed,
        credentials_changed: summary.credentials_changed,
        memberships_changed: summary.memberships_changed,
        grants_changed: summary.grants_changed,
        version: summary.version,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockJson {
    #[serde(default)]
    kind: Option<CredentialKind>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Serialize)]
pub struct BlockedJson {
    hash: String,
    /// The snapshot version that carries the block to terminals.
    version: u64,
}

/// Blocks a credential (lost card): it reaches the deny list of the next delta.
pub async fn block_credential(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<Json<BlockedJson>, ApiError> {
    let request: BlockJson = parse_json(&body)?;
    let hash = match (request.kind, request.id, request.hash) {
        (Some(kind), Some(id), None) => credential_hash(&state.keys.credential_key, kind, &id),
        (None, None, Some(hash)) => hash,
        _ => {
            return Err(ApiError::bad_request(
                "malformed",
                "body: give either kind and id, or hash",
            ))
        }
    };
    match &staff.role {
        Role::Admin => {}
        Role::Provider(own) => {
            if !state.store.provider_knows_credential(own, &hash).await? {
                return Err(ApiError::not_found("credential not found"));
            }
        }
        Role::Merchant(_) => return Err(ApiError::forbidden("this needs a provider token")),
    }
    let version = state
        .store
        .block_credential(&hash)
        .await?
        .ok_or_else(|| ApiError::not_found("credential not found"))?;
    tracing::warn!(credential = %&hash[..16.min(hash.len())], by = %staff.label, version, "credential blocked");
    Ok(Json(BlockedJson { hash, version }))
}

#[derive(Serialize)]
pub struct RecipientJson {
    id: String,
    grants: Vec<shared::model::Grant>,
    memberships: Vec<shared::model::Membership>,
    credentials: Vec<CredentialJson>,
}

#[derive(Serialize)]
pub struct CredentialJson {
    hash: String,
    kind: CredentialKind,
    status: &'static str,
}

pub async fn recipient(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<RecipientJson>, ApiError> {
    let provider = match &staff.role {
        Role::Admin => None,
        Role::Provider(own) => Some(own.as_str()),
        Role::Merchant(_) => {
            return Err(ApiError::forbidden(
                "recipients are the providers' business",
            ))
        }
    };
    let view = state
        .store
        .recipient(&id, provider)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recipient {id:?} not found")))?;
    Ok(Json(RecipientJson {
        id: view.id,
        grants: view.entries.grants,
        memberships: view.entries.memberships,
        credentials: view
            .credentials
            .into_iter()
            .map(|(hash, kind, status)| CredentialJson {
                hash,
                kind,
                status: match status {
                    CredentialStatus::Active => "active",
                    CredentialStatus::Blocked => "blocked",
                },
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    #[serde(default)]
    terminal: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    after_terminal: Option<String>,
    #[serde(default)]
    after_seq: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Serialize)]
pub struct RecordJson {
    terminal: String,
    seq: u64,
    hash: String,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    recipient: String,
    merchant: String,
    at: Timestamp,
    kind: String,
    discount: String,
    record: serde_json::Value,
}

const RECORDS_PAGE_MAX: u32 = 1_000;

/// A stored record body as JSON; `null` if it does not parse (it was
/// verified at ingestion, so this is only a guard against a damaged row).
fn stored_body(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

pub async fn records(
    State(state): State<AppState>,
    staff: Staff,
    query: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RecordJson>>, ApiError> {
    let Query(query) = query
        .map_err(|err| ApiError::bad_request("malformed", format!("query: {}", err.body_text())))?;
    let mut filter = RecordFilter {
        terminal: query.terminal,
        outcome: query.outcome,
        after: query
            .after_terminal
            .map(|t| (t, query.after_seq.unwrap_or(0))),
        limit: query.limit.unwrap_or(100).clamp(1, RECORDS_PAGE_MAX),
        ..RecordFilter::default()
    };
    match &staff.role {
        Role::Admin => {}
        Role::Provider(own) => filter.provider = Some(own.clone()),
        Role::Merchant(own) => filter.merchant = Some(own.clone()),
    }
    let rows = state.store.records(&filter).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| RecordJson {
                record: stored_body(&row.body),
                terminal: row.terminal,
                seq: row.seq,
                hash: row.hash,
                outcome: row.outcome,
                reason: row.reason,
                recipient: row.recipient,
                merchant: row.merchant,
                at: row.at,
                kind: row.kind,
                discount: shared::money::Money::from_cents(row.discount_cents).to_string(),
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct ForkJson {
    terminal: String,
    seq: u64,
    hash: String,
    record: serde_json::Value,
}

pub async fn forks(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<ForkJson>>, ApiError> {
    admin_only(&staff)?;
    Ok(Json(
        state
            .store
            .forks(None)
            .await?
            .into_iter()
            .map(|row| ForkJson {
                record: stored_body(&row.body),
                terminal: row.terminal,
                seq: row.seq,
                hash: row.hash,
            })
            .collect(),
    ))
}
