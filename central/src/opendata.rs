//! Open data: benefit usage aggregated per benefit, provider, merchant and
//! month, as CSV and JSON, with a JSON-LD (DCAT + CSVW) description of the
//! dataset; small cells suppressed so that no person can be singled out.
//!
//! What is counted is what the register proves and the provider pays: per
//! cell, the transactions with a payable amount, the distinct recipients
//! among them, and the payable amount. Beside the cells, one total per
//! benefit and month (over all merchants) is published, because the total
//! public money per benefit must be visible in full.
//!
//! Suppression (`docs/open-data.md`):
//! - **primary**: a cell or total with fewer than `threshold` (5) distinct
//!   recipients is published without values;
//! - **secondary**: when a benefit-month total is published and exactly one
//!   of its cells is primary-suppressed, the total minus the other cells
//!   would reveal it, so the smallest other cell is suppressed too. Then
//!   every published total has zero or at least two suppressed cells.
//!
//! Deliberately absent: recipient references, terminals, days; anything
//! finer than a merchant and a month.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::model::{Benefit, CartLine, LineDiscount};
use shared::money::Money;

use shared::wire::keys::Hash;
use shared::wire::record::{CredentialRef, RecordKind};

use crate::reconcile::{Calendar, Decision, UsageRecord};
use crate::store::RecordRow;

/// Fewest distinct recipients a published cell may have.
pub const SUPPRESSION_THRESHOLD: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    pub transactions: u64,
    pub recipients: u64,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// Fewer than the threshold of recipients.
    Primary,
    /// Hidden so that a total cannot reveal a primary-suppressed cell.
    Secondary,
}

impl Suppression {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Primary => "primary",
            Suppression::Secondary => "secondary",
        }
    }
}

/// Usage of one benefit at one merchant in one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// `2026-03`, in the benefit's time zone.
    pub month: String,
    pub provider: String,
    pub benefit: String,
    pub merchant: String,
    #[serde(flatten)]
    pub values: Published,
}

/// Usage of one benefit in one month, all merchants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    pub month: String,
    pub provider: String,
    pub benefit: String,
    #[serde(flatten)]
    pub values: Published,
}

/// Values, or the reason they are withheld. In JSON the three values are
/// `null` when suppressed, so every row has the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub transactions: Option<u64>,
    pub recipients: Option<u64>,
    pub amount: Option<Money>,
    pub suppressed: Option<Suppression>,
}

impl Published {
    fn shown(values: Values) -> Published {
        Published {
            transactions: Some(values.transactions),
            recipients: Some(values.recipients),
            amount: Some(values.amount),
            suppressed: None,
        }
    }
    fn hidden(reason: Suppression) -> Published {
        Published {
            transactions: None,
            recipients: None,
            amount: None,
            suppressed: Some(reason),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenDataset {
    pub threshold: u64,
    pub cells: Vec<Cell>,
    pub totals: Vec<Total>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct OpenDataError {
    pub at: String,
    pub message: String,
}

#[derive(Default)]
struct Accumulator<'a> {
    transactions: HashSet<(&'a str, u64)>,
    recipients: HashSet<&'a str>,
    cents: i64,
}

impl Accumulator<'_> {
    fn values(&self) -> Values {
        Values {
            transactions: self.transactions.len() as u64,
            recipients: self.recipients.len() as u64,
            amount: Money::from_cents(self.cents),
        }
    }
}

/// Aggregates reconciled records (`decisions[i]` decides `records[i]`);
/// only payable amounts count. `threshold` below 2 is raised to 2: one
/// recipient is always a person.
pub fn aggregate(
    benefits: &[Benefit],
    records: &[UsageRecord],
    decisions: &[Decision],
    threshold: u64,
) -> Result<OpenDataset, OpenDataError> {
    if records.len() != decisions.len() {
        return Err(OpenDataError {
            at: "decisions".into(),
            message: format!(
                "there are {} records but {} decisions",
                records.len(),
                decisions.len()
            ),
        });
    }
    let threshold = threshold.max(2);
    let by_id: HashMap<&str, &Benefit> = benefits.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut calendar = Calendar::default();
    // (month, benefit) → merchant → accumulator; and the totals.
    type Key<'a> = (String, &'a str);
    let mut cells: BTreeMap<Key<'_>, BTreeMap<&str, Accumulator<'_>>> = BTreeMap::new();
    let mut totals: BTreeMap<Key<'_>, Accumulator<'_>> = BTreeMap::new();
    let mut month_cache: HashMap<Date, String> = HashMap::new();
    for (idx, (record, decision)) in records.iter().zip(decisions).enumerate() {
        if decision.key.terminal != record.terminal
            || decision.key.seq != record.seq
            || decision.key.line != record.line
            || decision.key.benefit != record.benefit
        {
            return Err(OpenDataError {
                at: format!("records[{idx}]"),
                message: format!("decision is for {}, not for this record", decision.key),
            });
        }
        if !decision.payable.is_positive() {
            continue;
        }
        let Some(benefit) = by_id.get(record.benefit.as_str()) else {
            return Err(OpenDataError {
                at: format!("records[{idx}]"),
                message: format!("benefit {:?} is not defined", record.benefit),
            });
        };
        let day = calendar.date(&benefit.time_zone, record.at);
        let month = month_cache
            .entry(day.first_of_month())
            .or_insert_with(|| format!("{:04}-{:02}", day.year(), day.month()))
            .clone();
        let cents = decision.payable.cents();
        for accumulator in [
            cells
                .entry((month.clone(), &benefit.id))
                .or_default()
                .entry(&record.merchant)
                .or_default(),
            totals.entry((month, &benefit.id)).or_default(),
        ] {
            accumulator
                .transactions
                .insert((&record.terminal, record.seq));
            accumulator.recipients.insert(&record.recipient);
            accumulator.cents += cents;
        }
    }

    let mut out_cells = Vec::new();
    let mut out_totals = Vec::new();
    for ((month, benefit_id), merchants) in &cells {
        let provider = by_id
            .get(benefit_id)
            .map_or(String::new(), |b| b.provider.clone());
        let total = totals
            .get(&(month.clone(), *benefit_id))
            .map(Accumulator::values);
        let total_shown = total.is_some_and(|values| values.recipients >= threshold);
        let values: Vec<(&str, Values)> = merchants
            .iter()
            .map(|(merchant, accumulator)| (*merchant, accumulator.values()))
            .collect();
        let mut suppressed: Vec<Option<Suppression>> = values
            .iter()
            .map(|(_, v)| (v.recipients < threshold).then_some(Suppression::Primary))
            .collect();
        let n_suppressed = suppressed.iter().filter(|s| s.is_some()).count();
        if total_shown && n_suppressed == 1 {
            // The smallest published cell hides the lone suppressed one.
            let partner = values
                .iter()
                .enumerate()
                .filter(|(idx, _)| suppressed[*idx].is_none())
                .min_by_key(|(_, (merchant, v))| (v.recipients, v.transactions, *merchant))
                .map(|(idx, _)| idx);
            if let Some(idx) = partner {
                suppressed[idx] = Some(Suppression::Secondary);
            }
        }
        for ((merchant, values), suppression) in values.into_iter().zip(suppressed) {
            out_cells.push(Cell {
                month: month.clone(),
                provider: provider.clone(),
                benefit: (*benefit_id).to_owned(),
                merchant: merchant.to_owned(),
                values: match suppression {
                    Some(reason) => Published::hidden(reason),
                    None => Published::shown(values),
                },
            });
        }
        if let Some(total) = total {
            out_totals.push(Total {
                month: month.clone(),
                provider: provider.clone(),
                benefit: (*benefit_id).to_owned(),
                values: if total_shown {
                    Published::shown(total)
                } else {
                    Published::hidden(Suppression::Primary)
                },
            });
        }
    }
    let order = |month: &str, provider: &str, benefit: &str| {
        (month.to_owned(), provider.to_owned(), benefit.to_owned())
    };
    out_cells.sort_by(|a, b| {
        order(&a.month, &a.provider, &a.benefit)
            .cmp(&order(&b.month, &b.provider, &b.benefit))
            .then_with(|| a.merchant.cmp(&b.merchant))
    });
    out_totals.sort_by(|a, b| {
        order(&a.month, &a.provider, &a.benefit).cmp(&order(&b.month, &b.provider, &b.benefit))
    });
    Ok(OpenDataset {
        threshold,
        cells: out_cells,
        totals: out_totals,
    })
}

impl OpenDataset {
    /// `usage.csv`: one row per cell; suppressed values are empty and the
    /// `suppressed` column says why.
    pub fn cells_csv(&self) -> String {
        let mut out = String::from(
            "month,provider,benefit,merchant,transactions,recipients,amount_eur,suppressed\r\n",
        );
        for cell in &self.cells {
            csv_row(
                &mut out,
                &[&cell.month, &cell.provider, &cell.benefit, &cell.merchant],
                &cell.values,
            );
        }
        out
    }

    /// `usage-totals.csv`: one row per benefit and month, all merchants.
    pub fn totals_csv(&self) -> String {
        let mut out = String::from(
            "month,provider,benefit,transactions,recipients,amount_eur,suppressed\r\n",
        );
        for total in &self.totals {
            csv_row(
                &mut out,
                &[&total.month, &total.provider, &total.benefit],
                &total.values,
            );
        }
        out
    }

    /// `usage.json`: the threshold, cells and totals.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{}"))
    }
}

fn csv_row(out: &mut String, keys: &[&str], values: &Published) {
    for key in keys {
        out.push_str(&csv_field(key));
        out.push(',');
    }
    let number = |value: Option<u64>| value.map_or(String::new(), |n| n.to_string());
    let _ = write!(
        out,
        "{},{},{},{}\r\n",
        number(values.transactions),
        number(values.recipients),
        values.amount.map_or(String::new(), |a| a.to_string()),
        values.suppressed.map_or("", Suppression::as_str)
    );
}

/// RFC 4180: quote a field holding a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// What the JSON-LD description says about the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetMeta {
    /// The dataset's IRI, e.g. `https://register.example.lv/open-data/usage/2026-03`.
    pub iri: String,
    pub title: String,
    pub publisher: String,
    pub publisher_iri: String,
    pub issued: Date,
    pub first_day: Date,
    pub last_day: Date,
    /// e.g. `https://creativecommons.org/licenses/by/4.0/`.
    pub license: String,
    pub cells_csv_url: String,
    pub totals_csv_url: String,
    pub json_url: String,
}

/// A DCAT dataset description with its three distributions; each CSV
/// distribution carries a CSVW table schema so that its columns, datatypes
/// and empty (suppressed) values are machine-readable.
pub fn dataset_jsonld(meta: &DatasetMeta, dataset: &OpenDataset) -> serde_json::Value {
    let value_columns = json!([
        {"name": "transactions", "titles": "transactions", "datatype": "nonNegativeInteger",
         "dct:description": "Transactions with a payable benefit amount; empty when suppressed"},
        {"name": "recipients", "titles": "recipients", "datatype": "nonNegativeInteger",
         "dct:description": "Distinct recipients; empty when suppressed"},
        {"name": "amount_eur", "titles": "amount_eur", "datatype": "decimal",
         "dct:description": "Payable amount in EUR; empty when suppressed"},
        {"name": "suppressed", "titles": "suppressed", "datatype": "string",
         "dct:description": format!("primary: fewer than {} recipients; secondary: hidden so that totals cannot reveal a primary-suppressed cell", dataset.threshold)},
    ]);
    let key = |name: &str, description: &str| json!({"name": name, "titles": name, "datatype": "string", "dct:description": description});
    let columns = |with_merchant: bool| {
        let mut columns = vec![
            key(
                "month",
                "Calendar month (YYYY-MM) in the benefit's time zone",
            ),
            key("provider", "Benefit provider id"),
            key("benefit", "Benefit id"),
        ];
        if with_merchant {
            columns.push(key("merchant", "Merchant id"));
        }
        columns.extend(value_columns.as_array().cloned().unwrap_or_default());
        columns
    };
    json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "csvw": "http://www.w3.org/ns/csvw#",
            "name": "csvw:name",
            "titles": "csvw:title",
            "datatype": "csvw:datatype",
        },
        "@id": meta.iri,
        "@type": "dcat:Dataset",
        "dct:title": meta.title,
        "dct:description": format!(
            "Benefit usage per benefit, provider, merchant and month, from reconciled transactions \
             of the benefit register: transactions, distinct recipients and payable amount. Cells \
             with fewer than {} recipients are suppressed, and complementary cells so that totals \
             cannot reveal them.",
            dataset.threshold
        ),
        "dct:publisher": {"@id": meta.publisher_iri, "@type": "foaf:Agent", "foaf:name": meta.publisher},
        "dct:issued": {"@value": meta.issued.to_string(), "@type": "xsd:date"},
        "dct:temporal": {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": {"@value": meta.first_day.to_string(), "@type": "xsd:date"},
            "dcat:endDate": {"@value": meta.last_day.to_string(), "@type": "xsd:date"},
        },
        "dct:license": {"@id": meta.license},
        "dcat:keyword": ["benefits", "social support", "public spending"],
        "dcat:distribution": [
            {
                "@type": "dcat:Distribution",
                "dcat:downloadURL": {"@id": meta.cells_csv_url},
                "dcat:mediaType": "text/csv",
                "dct:title": "Usage per benefit, merchant and month",
                "csvw:tableSchema": {"csvw:column": columns(true)},
            },
            {
                "@type": "dcat:Distribution",
                "dcat:downloadURL": {"@id": meta.totals_csv_url},
                "dcat:mediaType": "text/csv",
                "dct:title": "Usage per benefit and month, all merchants",
                "csvw:tableSchema": {"csvw:column": columns(false)},
            },
            {
                "@type": "dcat:Distribution",
                "dcat:downloadURL": {"@id": meta.json_url},
                "dcat:mediaType": "application/json",
                "dct:title": "Cells and totals as JSON",
            },
        ],
    })
}

/// The fields of a stored record body that usage needs; serde skips the
/// rest (the quote's inputs and history), which were checked at ingestion.
#[derive(Deserialize)]
struct UsageBody {
    at: jiff::Timestamp,
    cart: Vec<CartLine>,
    credential: CredentialRef,
    inputs: UsageInputs,
    kind: RecordKind,
    merchant: String,
    quote: UsageQuote,
    recipient: String,
    #[serde(default)]
    voids: Option<u64>,
}

#[derive(Deserialize)]
struct UsageInputs {
    snapshot: u64,
}

#[derive(Deserialize)]
struct UsageQuote {
    discounts: Vec<LineDiscount>,
}

/// Turns stored records into usage records for reconciliation: one per
/// (cart line, benefit) of each accepted sale; a void is not usage itself
/// but marks the sale it cancels (same terminal) as `voided`. Records not
/// accepted at ingestion (flagged, held) are not what the register proves,
/// so they are left out.
pub fn usage_records(rows: &[RecordRow]) -> Result<Vec<UsageRecord>, OpenDataError> {
    let mut voided: HashSet<(&str, u64)> = HashSet::new();
    let mut sales: Vec<(&RecordRow, UsageBody)> = Vec::new();
    for row in rows.iter().filter(|row| row.outcome == "accepted") {
        let body: UsageBody = serde_json::from_str(&row.body).map_err(|err| OpenDataError {
            at: format!("record {}#{}", row.terminal, row.seq),
            message: format!("stored body: {err}"),
        })?;
        match (body.kind, body.voids) {
            (RecordKind::Void, Some(sale)) => {
                voided.insert((row.terminal.as_str(), sale));
            }
            (RecordKind::Void, None) => {}
            (RecordKind::Sale, _) => sales.push((row, body)),
        }
    }
    let mut out = Vec::new();
    for (row, body) in sales {
        let record_hash = Hash::from_hex(&row.hash).map_err(|err| OpenDataError {
            at: format!("record {}#{}", row.terminal, row.seq),
            message: format!("stored hash: {err}"),
        })?;
        for discount in &body.quote.discounts {
            let line = body.cart.get(discount.line as usize);
            out.push(UsageRecord {
                terminal: row.terminal.clone(),
                seq: row.seq,
                line: discount.line,
                at: body.at,
                recipient: body.recipient.clone(),
                credential: body.credential.hash.clone(),
                benefit: discount.benefit.clone(),
                provider: discount.provider.clone(),
                merchant: body.merchant.clone(),
                category: line.map(|l| l.category.clone()).unwrap_or_default(),
                amount: discount.amount,
                count: line.map_or(1, |l| l.qty),
                snapshot: body.inputs.snapshot,
                voided: voided.contains(&(row.terminal.as_str(), row.seq)),
                record_hash,
            });
        }
    }
    Ok(out)
}

/// The same dataset as linked data: a W3C Data Cube (`qb:`) with one
/// observation per published cell. Dimensions are the month, provider,
/// benefit and merchant (each an IRI under `base`); measures are
/// transactions, recipients and the amount in EUR. A suppressed cell is an
/// observation without measures and with `obsStatus` naming why, so that a
/// reader sees the cell exists and was withheld.
pub fn usage_cube_jsonld(base: &str, month: &str, dataset: &OpenDataset) -> serde_json::Value {
    let base = base.trim_end_matches('/');
    let observations: Vec<serde_json::Value> = dataset
        .cells
        .iter()
        .enumerate()
        .map(|(idx, cell)| {
            let mut observation = json!({
                "@id": format!("{base}/open-data/usage/{month}#cell-{idx}"),
                "@type": "qb:Observation",
                "qb:dataSet": {"@id": format!("{base}/open-data/usage/{month}")},
                "refPeriod": {"@value": cell.month, "@type": "xsd:gYearMonth"},
                "provider": {"@id": format!("{base}/open-data/providers/{}", cell.provider)},
                "benefit": {"@id": format!("{base}/open-data/benefits/{}", cell.benefit)},
                "merchant": {"@id": format!("{base}/open-data/merchants/{}", cell.merchant)},
            });
            match cell.values.suppressed {
                Some(reason) => {
                    observation["obsStatus"] = json!(reason.as_str());
                }
                None => {
                    observation["transactions"] =
                        json!(cell.values.transactions.unwrap_or_default());
                    observation["recipients"] = json!(cell.values.recipients.unwrap_or_default());
                    observation["amountEur"] = json!({
                        "@value": cell.values.amount.map(|a| a.to_string()).unwrap_or_default(),
                        "@type": "xsd:decimal"
                    });
                }
            }
            observation
        })
        .collect();
    let vocab = format!("{base}/open-data/vocab#");
    let context = json!({
        "@context": {
            "qb": "http://purl.org/linked-data/cube#",
            "dct": "http://purl.org/dc/terms/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "sdmx-dimension": "http://purl.org/linked-data/sdmx/2009/dimension#",
            "sdmx-attribute": "http://purl.org/linked-data/sdmx/2009/attribute#",
            "schema": "https://schema.org/",
            "bv": vocab,
            "refPeriod": "sdmx-dimension:refPeriod",
            "provider": "bv:provider",
            "benefit": "bv:benefit",
            "merchant": "bv:merchant",
            "transactions": {"@id": "bv:transactions", "@type": "xsd:nonNegativeInteger"},
            "recipients": {"@id": "bv:recipients", "@type": "xsd:nonNegativeInteger"},
            "amountEur": "bv:amountEur",
            "obsStatus": "sdmx-attribute:obsStatus",
        },
    });
    let mut graph = vec![json!({
        "@id": format!("{base}/open-data/usage/{month}"),
        "@type": "qb:DataSet",
        "dct:title": format!("Benefit usage per benefit, provider and merchant, {month}"),
        "dct:description": format!(
            "Cells with fewer than {} distinct recipients are suppressed (obsStatus primary), \
             and complementary cells so that totals cannot reveal them (obsStatus secondary).",
            dataset.threshold
        ),
        "qb:structure": {
            "@type": "qb:DataStructureDefinition",
            "qb:component": [
                {"qb:dimension": {"@id": "sdmx-dimension:refPeriod"}},
                {"qb:dimension": {"@id": "bv:provider"}},
                {"qb:dimension": {"@id": "bv:benefit"}},
                {"qb:dimension": {"@id": "bv:merchant"}},
                {"qb:measure": {"@id": "bv:transactions"}},
                {"qb:measure": {"@id": "bv:recipients"}},
                {"qb:measure": {"@id": "bv:amountEur"}},
                {"qb:attribute": {"@id": "sdmx-attribute:obsStatus"}},
            ],
        },
    })];
    graph.extend(observations);
    json!({"@context": context["@context"], "@graph": graph})
}

#[cfg(test)]
mod tests {
    //! Suppression as a statistician would check it, and the published
    //! files as a data user would read them.

    use super::*;
    use crate::reconcile::{reconcile, Policies};
    use jiff::Timestamp;
    use proptest::prelude::*;
    use shared::wire::keys::Hash;

    fn benefits() -> Vec<Benefit> {
        [
            r#"{"id":"lunch","provider":"riga","categories":["meal"],"discount":{"percent":"100"},
                "limits":[{"period":"day","max_count":1}]}"#,
            r#"{"id":"bus","provider":"riga","categories":["transport"],"discount":{"percent":"50"}}"#,
        ]
        .iter()
        .map(|json| serde_json::from_str(json).expect("benefit JSON in test"))
        .collect()
    }

    fn rec(seq: u64, at: &str, recipient: &str, benefit: &str, merchant: &str) -> UsageRecord {
        UsageRecord {
            terminal: format!("T-{merchant}"),
            seq,
            line: 0,
            at: at.parse::<Timestamp>().expect("timestamp in test"),
            recipient: recipient.into(),
            credential: format!("c-{recipient}"),
            benefit: benefit.into(),
            provider: "riga".into(),
            merchant: merchant.into(),
            category: "meal".into(),
            amount: Money::from_cents(250),
            count: 1,
            snapshot: 1,
            voided: false,
            record_hash: Hash::of(format!("{merchant}#{seq}").as_bytes()),
        }
    }

    fn dataset(records: &[UsageRecord]) -> OpenDataset {
        let decisions = reconcile(&benefits(), &Policies::new(), records)
            .expect("reconciles")
            .decisions;
        aggregate(&benefits(), records, &decisions, SUPPRESSION_THRESHOLD).expect("aggregates")
    }

    /// `n` recipients with one lunch each on 2 March at `merchant`.
    fn lunches(merchant: &str, n: usize, first_recipient: usize) -> Vec<UsageRecord> {
        (0..n)
            .map(|idx| {
                rec(
                    idx as u64 + 1,
                    "2026-03-02T12:00:00+02:00",
                    &format!("R-{}", first_recipient + idx),
                    "lunch",
                    merchant,
                )
            })
            .collect()
    }

    #[test]
    fn a_small_cell_is_hidden_with_the_smallest_other_cell() {
        let mut records = lunches("big", 10, 0);
        records.extend(lunches("mid", 6, 100));
        records.extend(lunches("tiny", 2, 200));
        let data = dataset(&records);
        assert_eq!(
            data.cells_csv(),
            "month,provider,benefit,merchant,transactions,recipients,amount_eur,suppressed\r\n\
             2026-03,riga,lunch,big,10,10,25.00,\r\n\
             2026-03,riga,lunch,mid,,,,secondary\r\n\
             2026-03,riga,lunch,tiny,,,,primary\r\n"
        );
        assert_eq!(
            data.totals_csv(),
            "month,provider,benefit,transactions,recipients,amount_eur,suppressed\r\n\
             2026-03,riga,lunch,18,18,45.00,\r\n"
        );
        let json: serde_json::Value = serde_json::from_str(&data.to_json()).expect("valid JSON");
        assert_eq!(json["cells"][2]["recipients"], serde_json::Value::Null);
        assert_eq!(json["cells"][2]["suppressed"], "primary");
        assert_eq!(json["cells"][0]["amount"], "25.00");
        assert_eq!(json["threshold"], 5);
    }

    #[test]
    fn two_small_cells_hide_each_other_and_a_small_total_hides_everything() {
        let mut records = lunches("big", 10, 0);
        records.extend(lunches("a", 2, 100));
        records.extend(lunches("b", 3, 200));
        let data = dataset(&records);
        let reasons: Vec<Option<Suppression>> =
            data.cells.iter().map(|c| c.values.suppressed).collect();
        assert_eq!(
            reasons,
            [Some(Suppression::Primary), Some(Suppression::Primary), None]
        );

        let data = dataset(&lunches("only", 4, 0));
        assert_eq!(data.totals[0].values.suppressed, Some(Suppression::Primary));
        assert_eq!(data.cells[0].values.suppressed, Some(Suppression::Primary));
    }

    #[test]
    fn only_payable_usage_counts_and_months_are_local() {
        let mut records = lunches("big", 5, 0);
        // R-0's second lunch that day is not payable: no transaction counted.
        records.push(rec(99, "2026-03-02T13:00:00+02:00", "R-0", "lunch", "big"));
        // 31 March 22:30 UTC is 1 April in Riga.
        records.push(rec(100, "2026-03-31T22:30:00Z", "R-0", "lunch", "big"));
        let data = dataset(&records);
        assert_eq!(data.totals[0].values.transactions, Some(5));
        assert_eq!(data.totals[1].month, "2026-04");
    }

    #[test]
    fn csv_quotes_fields_that_need_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn jsonld_describes_the_dataset_and_its_columns() {
        let data = dataset(&lunches("big", 10, 0));
        let meta = DatasetMeta {
            iri: "https://register.example.lv/open-data/usage/2026-03".into(),
            title: "Benefit usage, March 2026".into(),
            publisher: "Riga".into(),
            publisher_iri: "https://register.example.lv/providers/riga".into(),
            issued: jiff::civil::date(2026, 4, 2),
            first_day: jiff::civil::date(2026, 3, 1),
            last_day: jiff::civil::date(2026, 3, 31),
            license: "https://creativecommons.org/licenses/by/4.0/".into(),
            cells_csv_url: "https://register.example.lv/open-data/usage/2026-03.csv".into(),
            totals_csv_url: "https://register.example.lv/open-data/usage/2026-03-totals.csv".into(),
            json_url: "https://register.example.lv/open-data/usage/2026-03.json".into(),
        };
        let description = dataset_jsonld(&meta, &data);
        assert_eq!(description["@type"], "dcat:Dataset");
        assert_eq!(
            description["dct:temporal"]["dcat:startDate"]["@value"],
            "2026-03-01"
        );
        let distributions = description["dcat:distribution"].as_array().expect("array");
        assert_eq!(distributions.len(), 3);
        let columns = distributions[0]["csvw:tableSchema"]["csvw:column"]
            .as_array()
            .expect("columns");
        let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
        // The CSV header and the schema name the same columns in the same order.
        let header = data.cells_csv();
        let header = header.lines().next().unwrap_or("");
        assert_eq!(names.join(","), header);
    }

    /// A stored record of one lunch line (2.50 off) at terminal `T-1`.
    fn stored(seq: u64, kind: RecordKind, voids: Option<u64>, outcome: &str) -> RecordRow {
        use shared::model::Quote;
        use shared::wire::record::{
            CredentialKind, QuoteInputs, RecordBody, RecordType, RECORD_VERSION,
        };
        let price = Money::from_cents(250);
        let body = RecordBody {
            at: "2026-03-02T10:00:00Z".parse().expect("instant"),
            cart: vec![CartLine {
                sku: "LUNCH".into(),
                category: "meal".into(),
                unit_price: price,
                qty: 1,
            }],
            credential: CredentialRef {
                hash: "c-1".into(),
                kind: CredentialKind::Card,
            },
            idempotency_key: format!("k{seq}"),
            inputs: QuoteInputs {
                benefits: Vec::new(),
                entitlements: Vec::new(),
                history: Vec::new(),
                snapshot: 7,
            },
            kind,
            local_time: "2026-03-02T12:00:00+02:00".into(),
            merchant: "big".into(),
            prev: Hash::GENESIS,
            quote: Quote {
                discounts: vec![LineDiscount {
                    line: 0,
                    benefit: "lunch".into(),
                    provider: "riga".into(),
                    amount: price,
                }],
                total: price,
                discount_total: price,
                due: Money::from_cents(0),
                by_provider: [("riga".to_owned(), price)].into(),
                refused: Vec::new(),
            },
            recipient: "R-1".into(),
            seq,
            terminal: "T-1".into(),
            record_type: RecordType::Record,
            v: RECORD_VERSION,
            voids,
        };
        RecordRow {
            terminal: "T-1".into(),
            seq,
            hash: Hash::of(format!("record {seq}").as_bytes()).to_hex(),
            outcome: outcome.into(),
            reason: None,
            recipient: "R-1".into(),
            merchant: "big".into(),
            at: body.at,
            kind: "sale".into(),
            discount_cents: 250,
            body: serde_json::to_string(&body).expect("body JSON"),
        }
    }

    #[test]
    fn stored_records_become_usage_and_a_void_marks_its_sale() {
        let rows = [
            stored(1, RecordKind::Sale, None, "accepted"),
            stored(2, RecordKind::Sale, None, "accepted"),
            stored(3, RecordKind::Void, Some(1), "accepted"),
            stored(4, RecordKind::Sale, None, "flagged"),
        ];
        let usage = usage_records(&rows).expect("decodes");
        let seen: Vec<(u64, bool)> = usage.iter().map(|u| (u.seq, u.voided)).collect();
        assert_eq!(
            seen,
            [(1, true), (2, false)],
            "the void and the flagged sale are not usage"
        );
        assert_eq!(usage[1].amount, Money::from_cents(250));
        assert_eq!(usage[1].snapshot, 7);
        assert_eq!(usage[1].category, "meal");

        let mut broken = stored(5, RecordKind::Sale, None, "accepted");
        broken.body = "{}".into();
        let err = usage_records(&[broken]).expect_err("bad body");
        assert_eq!(err.at, "record T-1#5");
    }

    #[test]
    fn the_cube_withholds_measures_of_suppressed_cells() {
        let mut records = lunches("big", 10, 0);
        records.extend(lunches("mid", 6, 100));
        records.extend(lunches("tiny", 2, 200));
        let cube = usage_cube_jsonld(
            "https://register.example.lv/",
            "2026-03",
            &dataset(&records),
        );
        let graph = cube["@graph"].as_array().expect("graph");
        assert_eq!(
            graph[0]["@id"],
            "https://register.example.lv/open-data/usage/2026-03"
        );
        assert_eq!(graph.len(), 4, "the data set and three observations");
        let big = &graph[1];
        assert_eq!(
            big["merchant"]["@id"],
            "https://register.example.lv/open-data/merchants/big"
        );
        assert_eq!(big["recipients"], 10);
        assert_eq!(big["amountEur"]["@value"], "25.00");
        for hidden in &graph[2..] {
            assert!(hidden["obsStatus"].is_string());
            assert!(hidden.get("transactions").is_none());
            assert!(hidden.get("amountEur").is_none());
        }
    }

    proptest! {
        #[test]
        fn no_published_number_singles_anyone_out(
            rows in proptest::collection::vec((0usize..14, 0usize..4, 0usize..2, 0i64..(40 * 24 * 60)), 0..120)
        ) {
            let merchants = ["m0", "m1", "m2", "m3"];
            let benefit_ids = ["lunch", "bus"];
            let base: Timestamp = "2026-03-10T00:00:00Z".parse().expect("timestamp");
            let records: Vec<UsageRecord> = rows
                .iter()
                .enumerate()
                .map(|(seq, (recipient, merchant, benefit, minutes))| {
                    let mut record = rec(seq as u64 + 1, "2026-01-01T00:00:00Z", &format!("R-{recipient}"), benefit_ids[*benefit], merchants[*merchant]);
                    record.at = base + jiff::SignedDuration::from_mins(*minutes);
                    record
                })
                .collect();
            let decisions = reconcile(&benefits(), &Policies::new(), &records).expect("reconciles").decisions;
            let data = aggregate(&benefits(), &records, &decisions, SUPPRESSION_THRESHOLD).expect("aggregates");
            for cell in &data.cells {
                if let Some(recipients) = cell.values.recipients {
                    prop_assert!(recipients >= SUPPRESSION_THRESHOLD);
                }
            }
            for total in &data.totals {
                let group: Vec<&Cell> = data.cells.iter()
                    .filter(|c| c.month == total.month && c.benefit == total.benefit)
                    .collect();
                let hidden = group.iter().filter(|c| c.values.suppressed.is_some()).count();
                match total.values.amount {
                    Some(amount) => {
                        prop_assert!(hidden == 0 || hidden >= 2, "{} hidden under a published total", hidden);
                        // The total is the full payable amount of the group.
                        let payable: Money = records.iter().zip(&decisions)
                            .filter(|(r, _)| r.benefit == total.benefit)
                            .filter(|(r, _)| {
                                let month = r.at.to_zoned(jiff::tz::TimeZone::get("Europe/Riga").expect("zone")).date();
                                format!("{:04}-{:02}", month.year(), month.month()) == total.month
                            })
                            .map(|(_, d)| d.payable)
                            .sum();
                        prop_assert_eq!(amount, payable);
                    }
                    None => prop_assert_eq!(hidden, group.len()),
                }
            }
        }
    }
}
