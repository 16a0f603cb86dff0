//! Reports, the budget register, the recipient portal API and the open
//! data API (`docs/reports.md`, `docs/open-data.md`).
//!
//! - Merchant reports (merchant token: own merchant; admin: `merchant=`)
//!   and the provider report (provider token: own; admin: `provider=`) as
//!   JSON, CSV or printable HTML (`format=` or `Accept`).
//! - `PUT /api/v1/budgets/{benefit}/{month}`: expected spending.
//! - The portal: its own tokens (`portal_tokens`, created by an admin), so
//!   no staff token reads a person's view and no portal token reads staff
//!   data. Every access is logged with a keyed hash of the personal code,
//!   never the code.
//! - Open data: public, aggregated and suppressed (`crate::opendata`).
//!
//! Handlers read the store page by page and hand rows to the pure
//! builders in `crate::reports`, `crate::portal` and `crate::opendata`.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::model::Benefit;
use shared::money::Money;

use super::staff::{check_label, scoped_party, Side};
use super::{parse_json, ApiError, Staff};
use crate::keys::{random_token, secret_hash};
use crate::opendata::{self, SUPPRESSION_THRESHOLD};
use crate::portal::{self, PersonalCode, RecipientFacts, Registers};
use crate::reconcile::flags::FlagState;
use crate::reconcile::reconcile;
use crate::reports::{
    report_record, LedgerFlag, MerchantReportBuilder, Period, ProviderReportBuilder, ProviderTable,
    ReportRecord, OPEN_FLAGS_MAX,
};
use crate::store::ledger::FlagFilter;
use crate::store::people::{Budget, PeriodQuery, PortalAccess};
use crate::store::{RecordRow, Role};
use crate::AppState;

/// Rows read from the store per page.
const PAGE_ROWS: u32 = 5_000;

type Params = HashMap<String, String>;

/// Refuses parameters the endpoint does not know: a typo (`mnth=`) must
/// not silently give a different report.
fn known_params(params: &Params, allowed: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|key| !allowed.contains(key))
        .collect();
    unknown.sort_unstable();
    match unknown.first() {
        None => Ok(()),
        Some(name) => Err(ApiError::bad_request(
            "malformed",
            format!(
                "{name}: unknown parameter (this endpoint takes {})",
                allowed.join(", ")
            ),
        )),
    }
}

fn required<'a>(params: &'a Params, name: &str, shape: &str) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request("malformed", format!("{name}: required ({shape})")))
}

fn period_error(message: String) -> ApiError {
    ApiError::bad_request("malformed", message)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Html,
}

/// `format=` wins; else the first of CSV or HTML the `Accept` header
/// names; else JSON.
fn format_of(params: &Params, headers: &HeaderMap, html_allowed: bool) -> Result<Format, ApiError> {
    if let Some(text) = params.get("format") {
        return match text.as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" if html_allowed => Ok(Format::Html),
            other => Err(ApiError::bad_request(
                "malformed",
                format!(
                    "format: {other:?} is not one of {}",
                    if html_allowed {
                        "json, csv, html"
                    } else {
                        "json, csv"
                    }
                ),
            )),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for media in accept
        .split(',')
        .map(|m| m.split(';').next().unwrap_or("").trim())
    {
        match media {
            "text/csv" => return Ok(Format::Csv),
            "text/html" if html_allowed => return Ok(Format::Html),
            "application/json" => return Ok(Format::Json),
            _ => {}
        }
    }
    Ok(Format::Json)
}

/// `true` when the `Accept` header names `media`.
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|m| m.split(';').next().unwrap_or("").trim() == media)
        })
}

fn typed(content_type: &'static str, body: String, filename: Option<String>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    if let Some(name) = filename {
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

fn internal(message: String) -> ApiError {
    tracing::error!(error = %message, "report input");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (logged)",
    )
}

/// Reads every record of a period page by page and hands each, decoded, to `visit`.
async fn each_record(
    state: &AppState,
    mut query: PeriodQuery,
    mut visit: impl FnMut(&RecordRow, ReportRecord) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    loop {
        let page = state.store.records_in_period(&query).await?;
        for row in &page.rows {
            let record = report_record(row).map_err(|err| internal(err.to_string()))?;
            visit(row, record)?;
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(()),
        }
    }
}

fn period_query(period: Period) -> Result<PeriodQuery, ApiError> {
    let (from, to) = period.bounds().map_err(|err| internal(err.to_string()))?;
    Ok(PeriodQuery {
        from,
        to,
        merchant: None,
        provider: None,
        recipient: None,
        after: None,
        limit: PAGE_ROWS,
    })
}

/// The merchant a report is for: a merchant token's own, or the one an admin names.
fn report_merchant(staff: &Staff, named: Option<&str>) -> Result<String, ApiError> {
    scoped_party(
        staff,
        named,
        Side::Merchant,
        "read reports of",
        "merchant reports need a merchant token (providers: /api/v1/reports/provider)",
    )
}

fn report_provider(staff: &Staff, named: Option<&str>) -> Result<String, ApiError> {
    scoped_party(
        staff,
        named,
        Side::Provider,
        "read reports of",
        "the provider report needs a provider token (merchants: /api/v1/reports/merchant/…)",
    )
}

/// `GET /api/v1/reports/merchant/daily?date=YYYY-MM-DD`
#[tracing::instrument(skip_all)]
pub async fn merchant_daily(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    known_params(&params, &["date", "merchant", "format"])?;
    let period =
        Period::parse_day(required(&params, "date", "YYYY-MM-DD")?).map_err(period_error)?;
    merchant_report(state, staff, headers, params, period).await
}

/// `GET /api/v1/reports/merchant/monthly?month=YYYY-MM`
#[tracing::instrument(skip_all)]
pub async fn merchant_monthly(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    known_params(&params, &["month", "merchant", "format"])?;
    let period =
        Period::parse_month(required(&params, "month", "YYYY-MM")?).map_err(period_error)?;
    merchant_report(state, staff, headers, params, period).await
}

async fn merchant_report(
    state: AppState,
    staff: Staff,
    headers: HeaderMap,
    params: Params,
    period: Period,
) -> Result<Response, ApiError> {
    let format = format_of(&params, &headers, true)?;
    let merchant = report_merchant(&staff, params.get("merchant").map(String::as_str))?;
    let party = find_party(state.store.merchants().await?, &merchant, Side::Merchant)?;
    let labels: HashMap<String, String> = state
        .store
        .terminals(Some(&merchant))
        .await?
        .into_iter()
        .map(|t| (t.id, t.label))
        .collect();
    let mut builder = MerchantReportBuilder::new(&party.id, &party.name, period, labels);
    let mut query = period_query(period)?;
    query.merchant = Some(merchant.clone());
    each_record(&state, query, |_, record| {
        builder
            .add(&record)
            .map_err(|err| internal(err.to_string()))
    })
    .await?;
    // What reconciliation across terminals refused of accepted discounts
    // (offline overuse): lines with a conflict on the period's local days.
    for conflict in state
        .store
        .ledger_conflicts(period.first_day(), period.last_day(), None, Some(&merchant))
        .await?
    {
        let usage = &conflict.line.record;
        if usage.merchant != merchant || usage.voided {
            continue;
        }
        let refused = conflict.decision.claimed - conflict.decision.payable;
        if refused.is_positive() {
            builder.add_not_payable(&usage.terminal, &usage.benefit, &usage.provider, refused);
        }
    }
    let report = builder.finish(state.clock.now());
    let stem = format!("merchant-{}-{}", report.merchant, report.period);
    Ok(rendered(
        format,
        &report,
        || (report.to_csv(), format!("{}.csv", safe_file_name(&stem))),
        || report.to_html(),
    ))
}

/// The party named `id` among `parties`, or 404.
fn find_party(
    parties: Vec<crate::store::Party>,
    id: &str,
    side: Side,
) -> Result<crate::store::Party, ApiError> {
    parties
        .into_iter()
        .find(|party| party.id == id)
        .ok_or_else(|| ApiError::not_found(format!("{} {id:?} not found", side.name())))
}

/// A report in the format asked for; `csv` gives the text and file name.
fn rendered<T: Serialize>(
    format: Format,
    report: &T,
    csv: impl FnOnce() -> (String, String),
    html: impl FnOnce() -> String,
) -> Response {
    match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => {
            let (text, file_name) = csv();
            typed("text/csv; charset=utf-8", text, Some(file_name))
        }
        Format::Html => typed("text/html; charset=utf-8", html(), None),
    }
}

/// Keeps a file name to characters every client accepts.
fn safe_file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `GET /api/v1/reports/provider?month=YYYY-MM`
#[tracing::instrument(skip_all)]
pub async fn provider_report(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    known_params(&params, &["month", "provider", "format", "table"])?;
    let period =
        Period::parse_month(required(&params, "month", "YYYY-MM")?).map_err(period_error)?;
    let format = format_of(&params, &headers, true)?;
    let table = match params.get("table") {
        Some(text) => ProviderTable::parse(text).map_err(period_error)?,
        None => ProviderTable::Usage,
    };
    let provider = report_provider(&staff, params.get("provider").map(String::as_str))?;
    let party = find_party(state.store.providers().await?, &provider, Side::Provider)?;
    let merchant_names: HashMap<String, String> = state
        .store
        .merchants()
        .await?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let mut merchants: Vec<String> = merchant_names.keys().cloned().collect();
    merchants.sort_unstable();
    let mut builder = ProviderReportBuilder::new(&party.id, &party.name, period, merchant_names);
    // Merchant by merchant: each is a range of the `(merchant, at)` index,
    // where the provider filter only sorts out rows already found. Records
    // carry no indexed provider, and the period alone has no index, so one
    // query for the provider would scan every record ever stored. Every
    // record names a registered merchant (its terminal's).
    for merchant in merchants {
        let mut query = period_query(period)?;
        query.provider = Some(provider.clone());
        query.merchant = Some(merchant);
        each_record(&state, query, |_, record| {
            builder.add(&record);
            Ok(())
        })
        .await?;
    }
    let benefits: Vec<String> = state
        .store
        .benefits(Some(&provider))
        .await?
        .into_iter()
        .map(|b| b.benefit.id)
        .collect();
    let budgets: HashMap<String, i64> = state
        .store
        .budgets(&provider, &period.label())
        .await?
        .into_iter()
        .map(|b| (b.benefit, b.expected_cents))
        .collect();
    let ledger_flags = state
        .store
        .flags(&FlagFilter {
            provider: Some(provider.clone()),
            merchant: None,
            state: Some(FlagState::Open),
            kind: None,
            limit: u32::try_from(OPEN_FLAGS_MAX).unwrap_or(u32::MAX),
        })
        .await?
        .into_iter()
        .map(|row| LedgerFlag {
            id: row.flag.id,
            kind: row.flag.kind.as_str(),
            raised_at: row.flag.raised_at,
            terminal: row.terminal,
            seq: row.seq,
            merchant: row.merchant,
        })
        .collect();
    let report = builder.finish(&budgets, &benefits, ledger_flags, state.clock.now());
    let stem = format!("provider-{}-{}", report.provider, report.month);
    let suffix = match table {
        ProviderTable::Usage => "usage",
        ProviderTable::Budget => "budget",
        ProviderTable::Flags => "flags",
    };
    Ok(rendered(
        format,
        &report,
        || {
            (
                report.to_csv(table),
                format!("{}-{suffix}.csv", safe_file_name(&stem)),
            )
        },
        || report.to_html(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    /// Decimal EUR as a string, `"1200.00"`.
    expected: String,
}

#[derive(Serialize)]
pub struct BudgetAnswer {
    benefit: String,
    month: String,
    provider: String,
    expected: Money,
}

/// `PUT /api/v1/budgets/{benefit}/{month}` with `{"expected": "1200.00"}`.
#[tracing::instrument(skip_all)]
pub async fn put_budget(
    State(state): State<AppState>,
    staff: Staff,
    Path((benefit, month)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let period = Period::parse_month(&month).map_err(period_error)?;
    let request: BudgetBody = parse_json(&body)?;
    let expected = Money::parse(&request.expected).map_err(|err| {
        ApiError::bad_request(
            "malformed",
            format!("expected: {:?}: {err}", request.expected),
        )
    })?;
    if expected.is_negative() {
        return Err(ApiError::bad_request(
            "malformed",
            "expected: must not be negative",
        ));
    }
    let Some(stored) = state
        .store
        .benefits(None)
        .await?
        .into_iter()
        .find(|b| b.benefit.id == benefit)
    else {
        return Err(ApiError::not_found(format!(
            "benefit {benefit:?} not found"
        )));
    };
    let provider = stored.benefit.provider.clone();
    match &staff.role {
        Role::Admin => {}
        Role::Provider(own) if *own == provider => {}
        Role::Provider(_) => {
            // Another provider's benefit: not this token's business, as elsewhere.
            return Err(ApiError::not_found(format!(
                "benefit {benefit:?} not found"
            )));
        }
        Role::Merchant(_) => return Err(ApiError::forbidden("this needs a provider token")),
    }
    let budget = Budget {
        benefit: benefit.clone(),
        month: period.label(),
        provider: provider.clone(),
        expected_cents: expected.cents(),
    };
    state.store.put_budget(&budget).await?;
    tracing::info!(%benefit, month = %budget.month, %expected, by = %staff.label, "budget set");
    Ok(Json(BudgetAnswer {
        benefit,
        month: budget.month,
        provider,
        expected,
    }))
}

// --- the recipient portal ----------------------------------------------------

/// An authenticated portal client (a portal token, not a staff token).
#[derive(Debug, Clone)]
pub struct PortalClient {
    pub label: String,
}

impl FromRequestParts<AppState> for PortalClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<PortalClient, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                state.metrics.auth_failed();
                ApiError::unauthorized("Authorization: Bearer <portal token> is required")
            })?;
        let hash = secret_hash(token.trim());
        if let Some(label) = state.store.portal_token(&hash).await? {
            return Ok(PortalClient { label });
        }
        state.metrics.auth_failed();
        // A staff token is known but has no business here: say so plainly.
        if state.store.token(&hash).await?.is_some() {
            return Err(ApiError::forbidden(
                "the person view needs a portal token; staff tokens cannot read it",
            ));
        }
        Err(ApiError::unauthorized("unknown token"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortalTokenBody {
    label: String,
}

/// `POST /api/v1/portal/tokens` (admin): a new portal token, shown once.
#[tracing::instrument(skip_all)]
pub async fn create_portal_token(
    State(state): State<AppState>,
    staff: Staff,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if staff.role != Role::Admin {
        return Err(ApiError::forbidden("this needs the admin token"));
    }
    let request: PortalTokenBody = parse_json(&body)?;
    let label = request.label.trim();
    check_label("label", label)?;
    let token = random_token(32).map_err(|err| internal(err.to_string()))?;
    state
        .store
        .create_portal_token(&secret_hash(&token), label)
        .await?;
    tracing::info!(%label, by = %staff.label, "portal token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "label": label})),
    ))
}

/// The keyed hash under which the access log names a person: the personal
/// code in one form, keyed with the credential key so that the log alone
/// cannot be searched by guessing codes.
pub fn person_hash(credential_key: &[u8], code: &PersonalCode) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, credential_key);
    let mut context = hmac::Context::with_key(&key);
    context.update(b"portal-person\0");
    context.update(code.plain.as_bytes());
    hex::encode(context.sign().as_ref())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortalPersonBody {
    personal_code: String,
}

/// Refuses a body that does not say it is JSON: 415, so that a client
/// posting a form learns why rather than reading a parse error.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        if media.is_empty() {
            "Content-Type: required (application/json)".to_owned()
        } else {
            format!("Content-Type: {media:?} is not application/json")
        },
    ))
}

/// `POST /api/v1/portal/person` with `{"personal_code": "..."}`.
///
/// The code travels in the body, not the path: paths land in proxy and
/// access logs, bodies do not.
#[tracing::instrument(skip_all)]
pub async fn portal_person(
    State(state): State<AppState>,
    client: PortalClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<portal::PersonView>, ApiError> {
    require_json(&headers)?;
    let request: PortalPersonBody = parse_json(&body)?;
    let code = PersonalCode::parse(&request.personal_code).map_err(period_error)?;
    let now = state.clock.now();
    let person_hash = person_hash(&state.keys.credential_key, &code);
    let own = state.store.persons_by_code(&code.forms()).await?;
    state
        .store
        .log_portal_access(&PortalAccess {
            at: now,
            client: client.label.clone(),
            person_hash: person_hash.clone(),
            found: !own.is_empty(),
        })
        .await?;
    tracing::info!(client = %client.label, person = %person_hash, found = !own.is_empty(), "portal access");
    if own.is_empty() {
        return Err(ApiError::not_found(
            "no person with this personal code is registered",
        ));
    }
    let zone = jiff::tz::TimeZone::get(crate::reports::REPORT_ZONE)
        .map_err(|err| internal(err.to_string()))?;
    let today = now.to_zoned(zone.clone()).date();
    let since = portal::usage_since(today)
        .to_zoned(zone)
        .map(|z| z.timestamp())
        .map_err(|err| internal(err.to_string()))?;
    let own_ids: Vec<String> = own.iter().map(|p| p.recipient.clone()).collect();
    let children = state.store.children_of(&own_ids).await?;
    let mut own_facts = Vec::new();
    for person in own {
        own_facts.push(facts_of(&state, person, since, now).await?);
    }
    let mut child_facts = Vec::new();
    for person in children {
        child_facts.push(facts_of(&state, person, since, now).await?);
    }
    let benefits: Vec<Benefit> = state
        .store
        .benefits(None)
        .await?
        .into_iter()
        .map(|b| b.benefit)
        .collect();
    let groups = state.store.groups(None).await?;
    let providers: HashMap<String, String> = state
        .store
        .providers()
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let merchants: HashMap<String, String> = state
        .store
        .merchants()
        .await?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let registers = Registers {
        benefits: &benefits,
        groups: &groups,
        providers: &providers,
        merchants: &merchants,
    };
    Ok(Json(portal::person_view(
        &own_facts,
        &child_facts,
        &registers,
        today,
    )))
}

async fn facts_of(
    state: &AppState,
    person: crate::store::people::Person,
    since: Timestamp,
    now: Timestamp,
) -> Result<RecipientFacts, ApiError> {
    let entries = state
        .store
        .recipient(&person.recipient, None)
        .await?
        .map(|view| view.entries)
        .unwrap_or_default();
    let mut records = Vec::new();
    // A day past now: a terminal's clock may run a little ahead, and its
    // records are still this person's usage.
    let until = now
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now);
    let query = PeriodQuery {
        from: since,
        to: until,
        merchant: None,
        provider: None,
        recipient: Some(person.recipient.clone()),
        after: None,
        limit: PAGE_ROWS,
    };
    each_record(state, query, |_, record| {
        if record.accepted() {
            records.push(record);
        }
        Ok(())
    })
    .await?;
    Ok(RecipientFacts {
        person,
        entries,
        records,
    })
}

// --- open data -----------------------------------------------------------------

/// At most this many months' open data are computed at once: the page is
/// public, and a burst of requests for many months must leave the store
/// and the CPU to ingestion.
pub const OPEN_DATA_COMPUTE_MAX: usize = 2;

/// At most this many months are kept computed in memory (the oldest month
/// leaves first).
const OPEN_DATA_MONTHS_CACHED_MAX: usize = 120;

/// What a month's open data was computed from, and the result.
struct CachedMonth {
    /// Accepted records in the month when it was computed
    /// ([`crate::store::people::PeopleStore::accepted_in_period`]).
    accepted: u64,
    benefits: Vec<Benefit>,
    policies: crate::reconcile::Policies,
    dataset: std::sync::Arc<opendata::OpenDataset>,
}

/// The open data usage endpoint's cache and compute limit, one per router.
///
/// A cached month is served while the month's count of accepted records,
/// the benefits and the overuse policies are what it was computed from.
/// Accepted records are only ever added, so a late arrival (a terminal
/// syncing days later, or a held record resolved as accepted) changes the
/// count and the month is computed again; ingestion need not know about
/// this cache.
#[derive(Clone)]
pub struct OpenDataGate {
    months: std::sync::Arc<std::sync::Mutex<HashMap<String, CachedMonth>>>,
    compute: std::sync::Arc<tokio::sync::Semaphore>,
}

impl OpenDataGate {
    pub fn new(compute_max: usize) -> OpenDataGate {
        OpenDataGate {
            months: Default::default(),
            compute: std::sync::Arc::new(tokio::sync::Semaphore::new(compute_max)),
        }
    }

    fn months(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedMonth>> {
        // A panic while holding the lock leaves only whole entries behind.
        self.months
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(
        &self,
        month: &str,
        accepted: u64,
        benefits: &[Benefit],
        policies: &crate::reconcile::Policies,
    ) -> Option<std::sync::Arc<opendata::OpenDataset>> {
        self.months()
            .get(month)
            .filter(|c| c.accepted == accepted && c.benefits == benefits && c.policies == *policies)
            .map(|c| std::sync::Arc::clone(&c.dataset))
    }

    fn store(&self, month: String, entry: CachedMonth) {
        let mut months = self.months();
        if months.len() >= OPEN_DATA_MONTHS_CACHED_MAX && !months.contains_key(&month) {
            if let Some(oldest) = months.keys().min().cloned() {
                months.remove(&oldest);
            }
        }
        months.insert(month, entry);
    }
}

/// `GET /api/v1/open-data/usage?month=YYYY-MM&format=csv|json|jsonld[&table=cells|totals]`
#[tracing::instrument(skip_all)]
pub async fn open_data_usage(
    State(state): State<AppState>,
    axum::Extension(gate): axum::Extension<OpenDataGate>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    known_params(&params, &["month", "format", "table"])?;
    let period =
        Period::parse_month(required(&params, "month", "YYYY-MM")?).map_err(period_error)?;
    // `None`: JSON-LD, which only `format=` or `Accept` asks for.
    let format = match params.get("format").map(String::as_str) {
        Some("jsonld") => None,
        Some("json") => Some(Format::Json),
        Some("csv") => Some(Format::Csv),
        Some(other) => {
            return Err(ApiError::bad_request(
                "malformed",
                format!("format: {other:?} is not one of json, csv, jsonld"),
            ))
        }
        None if accepts(&headers, "application/ld+json") => None,
        None => Some(format_of(&params, &headers, false)?),
    };
    let totals = match params.get("table").map(String::as_str) {
        None | Some("cells") => false,
        Some("totals") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "malformed",
                format!("table: {other:?} is not one of cells, totals"),
            ))
        }
    };
    let month = period.label();
    // A month that has not begun has no usage: refuse it rather than let
    // a public client make the store scan for nothing.
    let zone = jiff::tz::TimeZone::get(crate::reports::REPORT_ZONE)
        .map_err(|err| internal(err.to_string()))?;
    let this_month = state.clock.now().to_zoned(zone).date().first_of_month();
    if period.first_day() > this_month {
        return Err(ApiError::bad_request(
            "malformed",
            format!(
                "month: {month} has not begun (open data covers months up to {})",
                &this_month.to_string()[..7]
            ),
        ));
    }
    let (from, to) = period.bounds().map_err(|err| internal(err.to_string()))?;
    let benefits: Vec<Benefit> = state
        .store
        .benefits(None)
        .await?
        .into_iter()
        .map(|b| b.benefit)
        .collect();
    // The providers' overuse policies, as the ledger and settlements use them.
    let policies = state.store.overuse_policies().await?;
    // Counted before the records are read: a record accepted in between is
    // in the dataset but not in the count, so the next request recomputes
    // once more; never the other way round.
    let accepted = state.store.accepted_in_period(from, to).await?;
    let (dataset, cache_status) = match gate.cached(&month, accepted, &benefits, &policies) {
        Some(dataset) => (dataset, "central; hit"),
        None => {
            let Ok(_permit) = gate.compute.clone().try_acquire_owned() else {
                let mut busy = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "open data: other months are being computed; retry in a few seconds",
                )
                .into_response();
                busy.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return Ok(busy);
            };
            let dataset = std::sync::Arc::new(
                month_dataset(&state, period, &month, &benefits, &policies).await?,
            );
            gate.store(
                month.clone(),
                CachedMonth {
                    accepted,
                    benefits,
                    policies,
                    dataset: std::sync::Arc::clone(&dataset),
                },
            );
            (dataset, "central; fwd=miss; stored")
        }
    };
    let mut response = match format {
        None => {
            let base = base_url(&headers);
            let body = opendata::usage_cube_jsonld(&base, &month, &dataset);
            typed(
                "application/ld+json",
                serde_json::to_string_pretty(&body).unwrap_or_default(),
                None,
            )
        }
        Some(Format::Csv) => typed(
            "text/csv; charset=utf-8",
            if totals {
                dataset.totals_csv()
            } else {
                dataset.cells_csv()
            },
            Some(format!(
                "usage-{month}{}.csv",
                if totals { "-totals" } else { "" }
            )),
        ),
        Some(_) => typed("application/json", dataset.to_json(), None),
    };
    // RFC 9211: whether this answer was computed now or served from memory.
    response.headers_mut().insert(
        header::HeaderName::from_static("cache-status"),
        HeaderValue::from_static(cache_status),
    );
    Ok(response)
}

/// Reads, reconciles and aggregates one month: the expensive part.
async fn month_dataset(
    state: &AppState,
    period: Period,
    month: &str,
    benefits: &[Benefit],
    policies: &crate::reconcile::Policies,
) -> Result<opendata::OpenDataset, ApiError> {
    let mut rows = Vec::new();
    let query = period_query(period)?;
    each_raw(state, query, |row| {
        rows.push(row);
    })
    .await?;
    let records = opendata::usage_records(&rows).map_err(|err| internal(err.to_string()))?;
    drop(rows);
    let decisions = reconcile(benefits, policies, &records)
        .map_err(|err| internal(err.to_string()))?
        .decisions;
    let dataset = opendata::aggregate(benefits, &records, &decisions, SUPPRESSION_THRESHOLD)
        .map_err(|err| internal(err.to_string()))?;
    // A record near the month's edge may land in the neighbouring month
    // in a benefit's own zone; publish only the month asked for.
    Ok(opendata::OpenDataset {
        threshold: dataset.threshold,
        cells: dataset
            .cells
            .into_iter()
            .filter(|c| c.month == month)
            .collect(),
        totals: dataset
            .totals
            .into_iter()
            .filter(|t| t.month == month)
            .collect(),
    })
}

async fn each_raw(
    state: &AppState,
    mut query: PeriodQuery,
    mut visit: impl FnMut(RecordRow),
) -> Result<(), ApiError> {
    loop {
        let page = state.store.records_in_period(&query).await?;
        for row in page.rows {
            visit(row);
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(()),
        }
    }
}

/// `https://<Host>`: the base of the IRIs in linked data, as the client
/// reached this server.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
}

#[derive(Serialize)]
struct OpenBenefit {
    id: String,
    provider: String,
    label: std::collections::BTreeMap<String, String>,
    /// The recipient groups it is for (classifier ids).
    groups: Vec<String>,
    conditions: portal::Conditions,
    valid_from: Option<jiff::civil::Date>,
    valid_to: Option<jiff::civil::Date>,
    funding: shared::model::Funding,
}

/// `GET /api/v1/open-data/benefits`: providers, merchants, the group
/// classifier, and benefits with their conditions. Never recipients.
#[tracing::instrument(skip_all)]
pub async fn open_data_benefits(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    known_params(&params, &[])?;
    let providers = state.store.providers().await?;
    let merchants = state.store.merchants().await?;
    let groups = state.store.groups(None).await?;
    let benefits: Vec<OpenBenefit> = state
        .store
        .benefits(None)
        .await?
        .into_iter()
        .map(|stored| {
            let b = stored.benefit;
            OpenBenefit {
                conditions: portal::conditions(&b),
                id: b.id,
                provider: b.provider,
                label: b.label,
                groups: b.groups,
                valid_from: b.valid_from,
                valid_to: b.valid_to,
                funding: b.funding,
            }
        })
        .collect();
    let used_groups: HashSet<&str> = benefits
        .iter()
        .flat_map(|b| b.groups.iter().map(String::as_str))
        .collect();
    let body = json!({
        "providers": providers.iter().map(|p| json!({"id": p.id, "name": p.name})).collect::<Vec<_>>(),
        "merchants": merchants.iter().map(|m| json!({"id": m.id, "name": m.name})).collect::<Vec<_>>(),
        "groups": groups.iter().map(|g| json!({
            "id": g.id,
            "provider": g.provider,
            "label": g.label,
            "used_by_benefits": used_groups.contains(g.id.as_str()),
        })).collect::<Vec<_>>(),
        "benefits": benefits,
    });
    Ok(Json(body).into_response())
}
