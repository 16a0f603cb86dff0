//! The ledger API: flags with their audit trail, reconciliation conflicts,
//! settlements and their e-invoices, overuse policies and invoice details
//! (`docs/central-api.md`).
//!
//! Scoping: the admin token sees everything; a provider token the flags,
//! conflicts and settlements that concern its money; a merchant token
//! those of its own terminals. Deciding a flag needs the admin or the
//! provider concerned: a merchant never judges its own transactions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use shared::money::Money;
use shared::validate::is_valid_id;

use super::{parse_json, ApiError, Staff};
use crate::ledger;
use crate::reconcile::flags::{self, FlagKind, FlagState};
use crate::reconcile::{Conflict, OverusePolicy};
use crate::store::ledger::{FlagFilter, FlagRow, SettlementFilter};
use crate::store::Role;
use crate::AppState;

/// Most flags one listing returns.
const FLAGS_LIMIT_MAX: u32 = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagsQuery {
    state: Option<String>,
    kind: Option<String>,
    provider: Option<String>,
    merchant: Option<String>,
    limit: Option<u32>,
    /// The id of the last flag of the previous page.
    after: Option<String>,
}

/// The header naming the cursor of the next page (the id of this page's
/// last flag, for `after=`), present only when more flags follow. The body
/// stays the array of flags, as in every other listing.
pub const NEXT_AFTER: &str = "next-after";

#[derive(Serialize)]
pub struct FlagJson {
    #[serde(flatten)]
    flag: flags::Flag,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant: Option<String>,
    providers: Vec<String>,
}

impl From<FlagRow> for FlagJson {
    fn from(row: FlagRow) -> FlagJson {
        FlagJson {
            providers: row
                .providers
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            merchant: row.merchant,
            flag: row.flag,
        }
    }
}

fn parse_state(text: &str) -> Result<FlagState, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        ApiError::bad_request(
            "malformed",
            format!("state: {text:?} is not one of open, accepted, rejected"),
        )
    })
}

fn parse_kind(text: &str) -> Result<FlagKind, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        ApiError::bad_request("malformed", format!("kind: unknown flag kind {text:?}"))
    })
}

/// The provider and merchant a listing is narrowed to, from the token and
/// the query (a scoped token cannot widen its scope).
fn scope(
    staff: &Staff,
    provider: Option<String>,
    merchant: Option<String>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    match &staff.role {
        Role::Admin => Ok((provider, merchant)),
        Role::Provider(own) => match provider {
            Some(named) if &named != own => Err(ApiError::forbidden(format!(
                "provider: a token of {own:?} cannot look at {named:?}"
            ))),
            _ => Ok((Some(own.clone()), merchant)),
        },
        Role::Merchant(own) => match merchant {
            Some(named) if &named != own => Err(ApiError::forbidden(format!(
                "merchant: a token of {own:?} cannot look at {named:?}"
            ))),
            _ => Ok((provider, Some(own.clone()))),
        },
    }
}

fn may_see(staff: &Staff, row: &FlagRow) -> bool {
    match &staff.role {
        Role::Admin => true,
        Role::Provider(own) => row.providers.contains(&format!(",{own},")),
        Role::Merchant(own) => row.merchant.as_deref() == Some(own.as_str()),
    }
}

/// `GET /api/v1/flags`: a page of at most `limit` flags in (raised_at,
/// id) order, after flag `after` when given; [`NEXT_AFTER`] names the
/// cursor of the next page.
pub async fn list_flags(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<FlagsQuery>,
) -> Result<Response, ApiError> {
    let (provider, merchant) = scope(&staff, query.provider, query.merchant)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > FLAGS_LIMIT_MAX {
        return Err(ApiError::bad_request(
            "malformed",
            format!("limit: must be 1..={FLAGS_LIMIT_MAX}"),
        ));
    }
    if let Some(after) = &query.after {
        // A cursor is a flag id this token may see: a stale or foreign one
        // would otherwise answer an empty page, which reads as "no more".
        let known = is_flag_id(after)
            && state
                .store
                .flag(after)
                .await?
                .is_some_and(|row| may_see(&staff, &row));
        if !known {
            return Err(ApiError::bad_request(
                "malformed",
                format!("after: {after:?} is not the id of a flag you can see"),
            ));
        }
    }
    let filter = FlagFilter {
        provider,
        merchant,
        state: query.state.as_deref().map(parse_state).transpose()?,
        kind: query.kind.as_deref().map(parse_kind).transpose()?,
        // One more than asked tells whether a next page exists.
        limit: limit + 1,
    };
    let mut rows = state
        .store
        .flags_after(&filter, query.after.as_deref())
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = rows.last().filter(|_| more).map(|row| row.flag.id.clone());
    let mut response =
        Json(rows.into_iter().map(FlagJson::from).collect::<Vec<_>>()).into_response();
    if let Some(next) = next {
        let value = HeaderValue::from_str(&next).map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("stored flag id {next:?} is not a header value"),
            )
        })?;
        response.headers_mut().insert(NEXT_AFTER, value);
    }
    Ok(response)
}

/// Flag ids are the first 32 hex digits of a hash (`Flag::raise`).
fn is_flag_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn visible_flag(state: &AppState, staff: &Staff, id: &str) -> Result<FlagRow, ApiError> {
    match state.store.flag(id).await? {
        Some(row) if may_see(staff, &row) => Ok(row),
        _ => Err(ApiError::not_found(format!("flag {id:?} not found"))),
    }
}

/// `GET /api/v1/flags/{id}`: the flag with its audit trail.
pub async fn get_flag(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<FlagJson>, ApiError> {
    Ok(Json(visible_flag(&state, &staff, &id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionJson {
    /// `accept`, `reject` or `reopen`.
    decision: String,
    note: String,
}

/// `POST /api/v1/flags/{id}/decision`.
pub async fn decide_flag(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<FlagJson>, ApiError> {
    let request: DecisionJson = parse_json(&body)?;
    let to = match request.decision.as_str() {
        "accept" => FlagState::Accepted,
        "reject" => FlagState::Rejected,
        "reopen" => FlagState::Open,
        other => {
            return Err(ApiError::bad_request(
                "malformed",
                format!("decision: {other:?} is not one of accept, reject, reopen"),
            ))
        }
    };
    if request.note.len() > 2_000 {
        return Err(ApiError::bad_request(
            "malformed",
            "note: at most 2000 bytes",
        ));
    }
    if let Role::Merchant(_) = staff.role {
        return Err(ApiError::forbidden(
            "a merchant cannot decide flags on its own transactions; the provider or an admin does",
        ));
    }
    let row = visible_flag(&state, &staff, &id).await?;
    let role = match &staff.role {
        Role::Admin => "admin".to_owned(),
        other => format!("{}:{}", other.kind(), other.scope().unwrap_or("")),
    };
    ledger::decide(
        state.store.as_ref(),
        &row,
        to,
        &staff.label,
        &role,
        &request.note,
        state.clock.now(),
    )
    .await
    .map_err(|err| match err {
        ledger::DecideError::NotFound(what) => ApiError::not_found(what),
        ledger::DecideError::Incomplete(message) => ApiError::bad_request("malformed", message),
        ledger::DecideError::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
        ledger::DecideError::Store(err) => err.into(),
    })?;
    // A decision on a record changes whether it counts: reconcile again.
    ledger::ingested(&state);
    Ok(Json(visible_flag(&state, &staff, &id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    period: String,
    provider: Option<String>,
    merchant: Option<String>,
}

#[derive(Serialize)]
pub struct ConflictJson {
    terminal: String,
    seq: u64,
    line: u32,
    benefit: String,
    provider: String,
    merchant: String,
    recipient: String,
    at: jiff::Timestamp,
    day: jiff::civil::Date,
    outcome: crate::reconcile::Outcome,
    claimed: Money,
    payable: Money,
    /// What the provider pays and what the merchant bears (claimed − payable).
    provider_bears: Money,
    merchant_bears: Money,
    conflicts: Vec<Conflict>,
}

/// `GET /api/v1/reconciliation?period=2026-03`: conflicts and who bears them.
pub async fn reconciliation(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<Vec<ConflictJson>>, ApiError> {
    let period = ledger::parse_month(&query.period)
        .map_err(|err| ApiError::bad_request("malformed", err))?;
    let (provider, merchant) = scope(&staff, query.provider, query.merchant)?;
    let rows = state
        .store
        .ledger_conflicts(
            period.start,
            period.end,
            provider.as_deref(),
            merchant.as_deref(),
        )
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| {
                let r = row.line.record;
                let d = row.decision;
                ConflictJson {
                    provider_bears: d.payable,
                    merchant_bears: d.claimed - d.payable,
                    terminal: r.terminal,
                    seq: r.seq,
                    line: r.line,
                    benefit: r.benefit,
                    provider: r.provider,
                    merchant: r.merchant,
                    recipient: r.recipient,
                    at: r.at,
                    day: row.line.day,
                    outcome: d.outcome,
                    claimed: d.claimed,
                    payable: d.payable,
                    conflicts: d.conflicts,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueJson {
    period: String,
    #[serde(default)]
    provider: Option<String>,
}

#[derive(Serialize)]
pub struct SettlementSummaryJson {
    number: String,
    provider: String,
    merchant: String,
    period: String,
    sequence: u64,
    creditor_reference: String,
    total: Money,
    fingerprint: String,
    issued_at: jiff::Timestamp,
}

/// `POST /api/v1/settlements`: issues a period's settlements (admin: all
/// providers or the one named; provider token: its own).
pub async fn issue(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<(StatusCode, Json<Vec<SettlementSummaryJson>>), ApiError> {
    let request: IssueJson = parse_json(&body)?;
    let period = ledger::parse_month(&request.period)
        .map_err(|err| ApiError::bad_request("malformed", err))?;
    let provider = match (&staff.role, request.provider) {
        (Role::Admin, named) => named,
        (Role::Provider(own), None) => Some(own.clone()),
        (Role::Provider(own), Some(named)) if &named == own => Some(named),
        (Role::Provider(own), Some(named)) => {
            return Err(ApiError::forbidden(format!(
                "provider: a token of {own:?} cannot settle for {named:?}"
            )))
        }
        (Role::Merchant(_), _) => {
            return Err(ApiError::forbidden(
                "settlements are issued by the provider or an admin",
            ))
        }
    };
    let issued = ledger::issue(
        state.store.as_ref(),
        period,
        provider.as_deref(),
        state.clock.now(),
    )
    .await
    .map_err(ledger_error)?;
    Ok((
        StatusCode::CREATED,
        Json(
            issued
                .into_iter()
                .map(|stored| SettlementSummaryJson {
                    number: stored.settlement.number.clone(),
                    provider: stored.settlement.provider.clone(),
                    merchant: stored.settlement.merchant.clone(),
                    period: stored.settlement.period.label(),
                    sequence: u64::from(stored.settlement.sequence),
                    creditor_reference: stored.settlement.creditor_reference.as_str().to_owned(),
                    total: stored.settlement.total,
                    fingerprint: stored.fingerprint,
                    issued_at: stored.issued_at,
                })
                .collect(),
        ),
    ))
}

fn ledger_error(err: ledger::LedgerError) -> ApiError {
    match err {
        ledger::LedgerError::Store(err) => err.into(),
        other => {
            tracing::error!(error = %other, "ledger run failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error (logged)",
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementsQuery {
    period: Option<String>,
    provider: Option<String>,
    merchant: Option<String>,
}

/// `GET /api/v1/settlements`.
pub async fn list_settlements(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<SettlementsQuery>,
) -> Result<Json<Vec<SettlementSummaryJson>>, ApiError> {
    if let Some(period) = &query.period {
        ledger::parse_month(period).map_err(|err| ApiError::bad_request("malformed", err))?;
    }
    let (provider, merchant) = scope(&staff, query.provider, query.merchant)?;
    let rows = state
        .store
        .settlements(&SettlementFilter {
            provider,
            merchant,
            period: query.period,
        })
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|s| SettlementSummaryJson {
                number: s.number,
                provider: s.provider,
                merchant: s.merchant,
                period: s.period,
                sequence: s.sequence,
                creditor_reference: s.creditor_reference,
                total: Money::from_cents(s.total_cents),
                fingerprint: s.fingerprint,
                issued_at: s.issued_at,
            })
            .collect(),
    ))
}

async fn visible_settlement(
    state: &AppState,
    staff: &Staff,
    number: &str,
) -> Result<crate::store::ledger::StoredSettlement, ApiError> {
    let found = state.store.settlement(number).await?;
    match found {
        Some(stored)
            if match &staff.role {
                Role::Admin => true,
                Role::Provider(own) => &stored.settlement.provider == own,
                Role::Merchant(own) => &stored.settlement.merchant == own,
            } =>
        {
            Ok(stored)
        }
        _ => Err(ApiError::not_found(format!(
            "settlement {number:?} not found"
        ))),
    }
}

/// `GET /api/v1/settlements/{number}`: the settlement exactly as issued.
pub async fn get_settlement(
    State(state): State<AppState>,
    staff: Staff,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let stored = visible_settlement(&state, &staff, &number).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        stored.document,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    document: Option<String>,
}

/// `GET /api/v1/settlements/{number}/invoice.xml[?document=ID]`: a UBL
/// invoice or credit note of the settlement (the first by default).
pub async fn invoice_xml(
    State(state): State<AppState>,
    staff: Staff,
    Path(number): Path<String>,
    Query(query): Query<InvoiceQuery>,
) -> Result<Response, ApiError> {
    let stored = visible_settlement(&state, &staff, &number).await?;
    let xml = ledger::render_invoice(state.store.as_ref(), &stored, query.document.as_deref())
        .await
        .map_err(|err| match err {
            ledger::InvoiceError::NoDocument(message) => ApiError::not_found(message),
            ledger::InvoiceError::Details(message) => {
                ApiError::new(StatusCode::CONFLICT, "no_invoice_details", message)
            }
            ledger::InvoiceError::Store(err) => err.into(),
        })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        )],
        xml,
    )
        .into_response())
}

/// `PUT /api/v1/invoice-details/{role}/{id}`: the admin, or the party itself.
pub async fn put_invoice_details(
    State(state): State<AppState>,
    staff: Staff,
    Path((role, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    if role != "merchant" && role != "provider" {
        return Err(ApiError::not_found(format!(
            "role {role:?}: expected merchant or provider"
        )));
    }
    let allowed = match &staff.role {
        Role::Admin => true,
        Role::Provider(own) => role == "provider" && own == &id,
        Role::Merchant(own) => role == "merchant" && own == &id,
    };
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "a {} token cannot set the invoice details of {role} {id:?}",
            staff.role.kind()
        )));
    }
    let details: ledger::InvoiceDetails = parse_json(&body)?;
    if details.party.id != id {
        return Err(ApiError::bad_request(
            "malformed",
            format!(
                "party.id: {:?} differs from the path's {id:?}",
                details.party.id
            ),
        ));
    }
    if let Some(iban) = &details.iban {
        if !crate::creditor_ref::iban_is_valid(iban) {
            return Err(ApiError::bad_request(
                "malformed",
                format!("iban: {iban:?} is not a valid IBAN (electronic format, check digits)"),
            ));
        }
    }
    let text = serde_json::to_string(&details).map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            err.to_string(),
        )
    })?;
    state.store.set_invoice_party(&role, &id, &text).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyJson {
    #[serde(default)]
    tolerance_count: u32,
    #[serde(default)]
    tolerance_amount: Option<Money>,
}

/// `PUT /api/v1/overuse-policies/{benefit}`: the benefit's provider or the admin.
pub async fn put_overuse_policy(
    State(state): State<AppState>,
    staff: Staff,
    Path(benefit): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    if !is_valid_id(&benefit) {
        return Err(ApiError::bad_request(
            "malformed",
            "benefit: not a valid id",
        ));
    }
    let policy: PolicyJson = parse_json(&body)?;
    let amount = policy.tolerance_amount.unwrap_or(Money::ZERO);
    if amount.is_negative() {
        return Err(ApiError::bad_request(
            "malformed",
            "tolerance_amount: must not be negative",
        ));
    }
    let owner = state
        .store
        .benefits(None)
        .await?
        .into_iter()
        .find(|b| b.benefit.id == benefit)
        .map(|b| b.benefit.provider)
        .ok_or_else(|| ApiError::not_found(format!("benefit {benefit:?} not found")))?;
    match &staff.role {
        Role::Admin => {}
        Role::Provider(own) if own == &owner => {}
        _ => {
            return Err(ApiError::forbidden(format!(
                "only provider {owner:?} or an admin sets the overuse policy of {benefit:?}"
            )))
        }
    }
    state
        .store
        .set_overuse_policy(
            &benefit,
            &OverusePolicy {
                tolerance_count: policy.tolerance_count,
                tolerance_amount: amount,
            },
        )
        .await?;
    // Every decision of the benefit may change: decide its lines again.
    state.store.ledger_reset_benefit(&benefit).await?;
    ledger::ingested(&state);
    Ok(StatusCode::NO_CONTENT)
}
