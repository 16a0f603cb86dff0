//! E-invoices: a settlement's documents as UBL 2.1 Invoice and CreditNote
//! XML following EN 16931 and the Peppol BIS Billing 3.0 profile, from the
//! merchant (seller) to the provider (buyer).
//!
//! Everything numeric (lines, net and VAT split, breakdown, totals) is
//! decided in [`crate::settlement`]; this module checks the party data and
//! writes XML. It builds the text directly (no XML library) and escapes
//! every value; what goes where is fixed by the UBL element order.
//!
//! Choices (see `docs/settlements.md`):
//! - electronic addresses and legal ids use ISO 6523 ICD / Peppol EAS
//!   `0218` (Latvian unified registration number) by default, or `9939`
//!   (Latvian VAT number);
//! - payment means `58` (SEPA credit transfer) to the merchant's IBAN, with
//!   the settlement's ISO 11649 creditor reference as payment id;
//! - tariff-discount lines are category `S` at their rate; loss
//!   compensation lines are category `O` (`VATEX-EU-O`), in their own
//!   document and without VAT identifiers (EN 16931 BR-O-02, BR-O-11);
//! - an invoice line's price is its net amount per unit, with enough
//!   decimals that quantity × price rounds back to the net amount.
//!
//! Deliberately absent: sending (Peppol access point, e-address); the
//! caller stores and delivers the XML.

use std::fmt::Write as _;

use jiff::civil::Date;
use jiff::ToSpan;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shared::money::Money;

use crate::creditor_ref::iban_is_valid;
use crate::settlement::{Document, DocumentKind, DocumentLine, Settlement, TaxClass, Treatment};

pub const CUSTOMIZATION_ID: &str =
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0";
pub const PROFILE_ID: &str = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0";

/// Peppol electronic address schemes (EAS) we issue for Latvian parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointScheme {
    /// `0218`: Latvian unified registration number (11 digits).
    LvRegistration,
    /// `9939`: Latvian VAT number (`LV` + 11 digits).
    LvVat,
}

impl EndpointScheme {
    pub fn code(self) -> &'static str {
        match self {
            EndpointScheme::LvRegistration => "0218",
            EndpointScheme::LvVat => "9939",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: String,
    pub city: String,
    /// `LV-1050`.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, `LV`.
    pub country: String,
}

/// A merchant or provider as it appears on an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// The register's id (merchant or provider), checked against the settlement.
    pub id: String,
    /// Legal name.
    pub name: String,
    /// Unified registration number, 11 digits.
    pub registration_number: String,
    /// `LV` + 11 digits, when VAT-registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<String>,
    pub address: Address,
    pub endpoint_scheme: EndpointScheme,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Party {
    fn endpoint_id(&self) -> &str {
        match self.endpoint_scheme {
            EndpointScheme::LvRegistration => &self.registration_number,
            EndpointScheme::LvVat => self.vat_id.as_deref().unwrap_or(""),
        }
    }
}

/// Everything an invoice needs beside the settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceContext {
    /// The merchant.
    pub seller: Party,
    /// The provider.
    pub buyer: Party,
    /// The merchant's account the provider pays to, electronic format.
    pub iban: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    /// Days from issue to due date.
    #[serde(default = "default_payment_days")]
    pub payment_days: u16,
    /// The provider's reference for its books (Peppol requires a buyer
    /// reference); the settlement number when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_reference: Option<String>,
}

fn default_payment_days() -> u16 {
    30
}

/// What is wrong with the invoice data, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct EinvoiceError {
    /// `seller.vat_id`, `documents[1]`, …
    pub at: String,
    pub message: String,
}

fn error(at: impl Into<String>, message: impl Into<String>) -> EinvoiceError {
    EinvoiceError {
        at: at.into(),
        message: message.into(),
    }
}

/// One rendered document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedDocument {
    pub id: String,
    pub kind: DocumentKind,
    pub xml: String,
}

/// Every document of a settlement as UBL XML.
pub fn render_all(
    settlement: &Settlement,
    context: &InvoiceContext,
) -> Result<Vec<RenderedDocument>, EinvoiceError> {
    settlement
        .documents
        .iter()
        .map(|document| {
            Ok(RenderedDocument {
                id: document.id.clone(),
                kind: document.kind,
                xml: render(settlement, document, context)?,
            })
        })
        .collect()
}

/// One document of a settlement as UBL 2.1 XML (Invoice or CreditNote).
pub fn render(
    settlement: &Settlement,
    document: &Document,
    context: &InvoiceContext,
) -> Result<String, EinvoiceError> {
    check_context(settlement, document, context)?;
    if document.lines.is_empty() {
        return Err(error(&document.id, "a document needs at least one line"));
    }
    let is_invoice = document.kind == DocumentKind::Invoice;
    let root = if is_invoice { "Invoice" } else { "CreditNote" };
    let with_vat_ids = document.class == TaxClass::Vat;
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.raw(&format!(
        "<{root} xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:{root}-2\" \
         xmlns:cac=\"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2\" \
         xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\">\n"
    ));
    x.leaf("cbc:CustomizationID", CUSTOMIZATION_ID);
    x.leaf("cbc:ProfileID", PROFILE_ID);
    x.leaf("cbc:ID", &document.id);
    x.leaf("cbc:IssueDate", &settlement.issued_on.to_string());
    let due = due_date(settlement.issued_on, context.payment_days)?;
    if is_invoice {
        x.leaf("cbc:DueDate", &due.to_string());
        x.leaf("cbc:InvoiceTypeCode", "380");
    } else {
        x.leaf("cbc:CreditNoteTypeCode", "381");
    }
    x.leaf("cbc:Note", &note(settlement, document));
    x.leaf("cbc:DocumentCurrencyCode", "EUR");
    x.leaf(
        "cbc:BuyerReference",
        context
            .buyer_reference
            .as_deref()
            .unwrap_or(&settlement.number),
    );
    // The document's period covers every line's: adjustments may concern
    // earlier days (Peppol R110/R111 want line periods inside it).
    let first_day = document
        .lines
        .iter()
        .map(|line| line.first_day)
        .min()
        .map_or(settlement.period.start, |day| {
            day.min(settlement.period.start)
        });
    let last_day = document
        .lines
        .iter()
        .map(|line| line.last_day)
        .max()
        .map_or(settlement.period.end, |day| day.max(settlement.period.end));
    x.open("cac:InvoicePeriod");
    x.leaf("cbc:StartDate", &first_day.to_string());
    x.leaf("cbc:EndDate", &last_day.to_string());
    x.close("cac:InvoicePeriod");
    for preceding in &document.preceding_invoices {
        x.open("cac:BillingReference");
        x.open("cac:InvoiceDocumentReference");
        x.leaf("cbc:ID", preceding);
        x.close("cac:InvoiceDocumentReference");
        x.close("cac:BillingReference");
    }
    x.open("cac:AccountingSupplierParty");
    party(&mut x, &context.seller, with_vat_ids);
    x.close("cac:AccountingSupplierParty");
    x.open("cac:AccountingCustomerParty");
    party(&mut x, &context.buyer, with_vat_ids);
    x.close("cac:AccountingCustomerParty");
    if is_invoice {
        x.open("cac:PaymentMeans");
        x.leaf_attr(
            "cbc:PaymentMeansCode",
            &[("name", "SEPA credit transfer")],
            "58",
        );
        x.leaf("cbc:PaymentID", settlement.creditor_reference.as_str());
        x.open("cac:PayeeFinancialAccount");
        x.leaf("cbc:ID", &context.iban);
        x.leaf("cbc:Name", &context.seller.name);
        if let Some(bic) = &context.bic {
            x.open("cac:FinancialInstitutionBranch");
            x.leaf("cbc:ID", bic);
            x.close("cac:FinancialInstitutionBranch");
        }
        x.close("cac:PayeeFinancialAccount");
        x.close("cac:PaymentMeans");
        x.open("cac:PaymentTerms");
        x.leaf(
            "cbc:Note",
            &format!(
                "Payment within {} days by SEPA credit transfer quoting {}",
                context.payment_days, settlement.creditor_reference
            ),
        );
        x.close("cac:PaymentTerms");
    } else {
        x.open("cac:PaymentTerms");
        x.leaf(
            "cbc:Note",
            &format!(
                "Deducted from what is owed under settlement {} (creditor reference {}); \
                 no separate payment",
                settlement.number, settlement.creditor_reference
            ),
        );
        x.close("cac:PaymentTerms");
    }
    x.open("cac:TaxTotal");
    x.amount("cbc:TaxAmount", document.vat_total);
    for breakdown in &document.vat_breakdown {
        x.open("cac:TaxSubtotal");
        x.amount("cbc:TaxableAmount", breakdown.taxable);
        x.amount("cbc:TaxAmount", breakdown.tax);
        tax_category(&mut x, "cac:TaxCategory", breakdown.treatment, true);
        x.close("cac:TaxSubtotal");
    }
    x.close("cac:TaxTotal");
    x.open("cac:LegalMonetaryTotal");
    x.amount("cbc:LineExtensionAmount", document.net_total);
    x.amount("cbc:TaxExclusiveAmount", document.net_total);
    x.amount(
        "cbc:TaxInclusiveAmount",
        document.net_total + document.vat_total,
    );
    x.amount("cbc:PayableAmount", document.gross_total);
    x.close("cac:LegalMonetaryTotal");
    let (line_tag, quantity_tag) = if is_invoice {
        ("cac:InvoiceLine", "cbc:InvoicedQuantity")
    } else {
        ("cac:CreditNoteLine", "cbc:CreditedQuantity")
    };
    for (idx, line) in document.lines.iter().enumerate() {
        invoice_line(&mut x, idx + 1, line, line_tag, quantity_tag);
    }
    x.raw(&format!("</{root}>\n"));
    Ok(x.out)
}

fn note(settlement: &Settlement, document: &Document) -> String {
    let what = match document.class {
        TaxClass::Vat => "Benefit discounts from the VAT-inclusive tariff",
        TaxClass::OutOfScope => "Compensation of the merchant's loss, outside the scope of VAT",
    };
    format!(
        "{what}, settlement {} for {} (creditor reference {}), as proven by the benefit register",
        settlement.number,
        settlement.period.label(),
        settlement.creditor_reference
    )
}

fn due_date(issued_on: Date, days: u16) -> Result<Date, EinvoiceError> {
    issued_on
        .checked_add(i64::from(days).days())
        .map_err(|err| error("payment_days", err.to_string()))
}

fn party(x: &mut Xml, party: &Party, with_vat_id: bool) {
    x.open("cac:Party");
    x.leaf_attr(
        "cbc:EndpointID",
        &[("schemeID", party.endpoint_scheme.code())],
        party.endpoint_id(),
    );
    x.open("cac:PartyName");
    x.leaf("cbc:Name", &party.name);
    x.close("cac:PartyName");
    x.open("cac:PostalAddress");
    x.leaf("cbc:StreetName", &party.address.street);
    x.leaf("cbc:CityName", &party.address.city);
    x.leaf("cbc:PostalZone", &party.address.postal_code);
    x.open("cac:Country");
    x.leaf("cbc:IdentificationCode", &party.address.country);
    x.close("cac:Country");
    x.close("cac:PostalAddress");
    if let (true, Some(vat_id)) = (with_vat_id, &party.vat_id) {
        x.open("cac:PartyTaxScheme");
        x.leaf("cbc:CompanyID", vat_id);
        x.open("cac:TaxScheme");
        x.leaf("cbc:ID", "VAT");
        x.close("cac:TaxScheme");
        x.close("cac:PartyTaxScheme");
    }
    x.open("cac:PartyLegalEntity");
    x.leaf("cbc:RegistrationName", &party.name);
    x.leaf_attr(
        "cbc:CompanyID",
        &[("schemeID", "0218")],
        &party.registration_number,
    );
    x.close("cac:PartyLegalEntity");
    if let Some(email) = &party.email {
        x.open("cac:Contact");
        x.leaf("cbc:ElectronicMail", email);
        x.close("cac:Contact");
    }
    x.close("cac:Party");
}

fn tax_category(x: &mut Xml, tag: &str, treatment: Treatment, with_exemption: bool) {
    x.open(tag);
    match treatment {
        Treatment::Vat(rate) => {
            x.leaf("cbc:ID", "S");
            x.leaf("cbc:Percent", &rate.to_string());
        }
        Treatment::OutOfScope => {
            x.leaf("cbc:ID", "O");
            if with_exemption {
                x.leaf("cbc:TaxExemptionReasonCode", "VATEX-EU-O");
                x.leaf("cbc:TaxExemptionReason", "Not subject to VAT");
            }
        }
    }
    x.open("cac:TaxScheme");
    x.leaf("cbc:ID", "VAT");
    x.close("cac:TaxScheme");
    x.close(tag);
}

fn invoice_line(x: &mut Xml, number: usize, line: &DocumentLine, tag: &str, quantity_tag: &str) {
    x.open(tag);
    x.leaf("cbc:ID", &number.to_string());
    x.leaf_attr(
        quantity_tag,
        &[("unitCode", "C62")],
        &line.quantity.to_string(),
    );
    x.amount("cbc:LineExtensionAmount", line.net);
    x.open("cac:InvoicePeriod");
    x.leaf("cbc:StartDate", &line.first_day.to_string());
    x.leaf("cbc:EndDate", &line.last_day.to_string());
    x.close("cac:InvoicePeriod");
    x.open("cac:Item");
    x.leaf("cbc:Description", &line.description);
    x.leaf("cbc:Name", &line.name);
    x.open("cac:SellersItemIdentification");
    x.leaf("cbc:ID", &line.benefit);
    x.close("cac:SellersItemIdentification");
    tax_category(x, "cac:ClassifiedTaxCategory", line.treatment, false);
    x.close("cac:Item");
    x.open("cac:Price");
    x.leaf_attr(
        "cbc:PriceAmount",
        &[("currencyID", "EUR")],
        &unit_price(line.net, line.quantity).to_string(),
    );
    x.close("cac:Price");
    x.close(tag);
}

/// Net per unit with as many decimals as the quantity has digits, plus
/// two: then quantity × price is within half a cent of the net, so it
/// rounds back to it (Peppol R120 allows 0.02).
pub fn unit_price(net: Money, quantity: u64) -> Decimal {
    let quantity = quantity.max(1);
    let digits = quantity.checked_ilog10().unwrap_or(0) + 1;
    let decimals = (digits + 2).clamp(2, 12);
    let mut price = (net.decimal() / Decimal::from(quantity))
        .round_dp(decimals)
        .normalize();
    if price.scale() < 2 {
        price.rescale(2);
    }
    price
}

fn check_context(
    settlement: &Settlement,
    document: &Document,
    context: &InvoiceContext,
) -> Result<(), EinvoiceError> {
    if !settlement.documents.iter().any(|d| d.id == document.id) {
        return Err(error(
            &document.id,
            format!("not a document of settlement {}", settlement.number),
        ));
    }
    if context.seller.id != settlement.merchant {
        return Err(error(
            "seller.id",
            format!(
                "{:?} is not the settlement's merchant {:?}",
                context.seller.id, settlement.merchant
            ),
        ));
    }
    if context.buyer.id != settlement.provider {
        return Err(error(
            "buyer.id",
            format!(
                "{:?} is not the settlement's provider {:?}",
                context.buyer.id, settlement.provider
            ),
        ));
    }
    check_party("seller", &context.seller)?;
    check_party("buyer", &context.buyer)?;
    if document.class == TaxClass::Vat && context.seller.vat_id.is_none() {
        return Err(error(
            "seller.vat_id",
            "the settlement has tariff-discount (VAT) lines, so the seller's VAT number is required \
             (EN 16931 BR-S-02)",
        ));
    }
    if !iban_is_valid(&context.iban) {
        return Err(error(
            "iban",
            format!(
                "{:?} is not a valid IBAN (electronic format, check digits)",
                context.iban
            ),
        ));
    }
    if let Some(bic) = &context.bic {
        let ok = (bic.len() == 8 || bic.len() == 11)
            && bic
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(error(
                "bic",
                format!("{bic:?} is not a BIC (8 or 11 upper-case letters and digits)"),
            ));
        }
    }
    if let Some(reference) = &context.buyer_reference {
        check_text("buyer_reference", reference, 200)?;
    }
    Ok(())
}

fn check_party(at: &str, party: &Party) -> Result<(), EinvoiceError> {
    check_text(&format!("{at}.name"), &party.name, 200)?;
    check_text(&format!("{at}.address.street"), &party.address.street, 200)?;
    check_text(&format!("{at}.address.city"), &party.address.city, 100)?;
    check_text(
        &format!("{at}.address.postal_code"),
        &party.address.postal_code,
        16,
    )?;
    let country = party.address.country.as_bytes();
    if country.len() != 2 || !country.iter().all(u8::is_ascii_uppercase) {
        return Err(error(
            format!("{at}.address.country"),
            format!(
                "{:?} is not an ISO 3166-1 alpha-2 code such as \"LV\"",
                party.address.country
            ),
        ));
    }
    let registration = party.registration_number.as_bytes();
    if registration.len() != 11 || !registration.iter().all(u8::is_ascii_digit) {
        return Err(error(
            format!("{at}.registration_number"),
            format!(
                "{:?} is not a Latvian unified registration number (11 digits)",
                party.registration_number
            ),
        ));
    }
    if let Some(vat_id) = &party.vat_id {
        let ok = vat_id.len() == 13
            && vat_id.starts_with("LV")
            && vat_id.as_bytes()[2..].iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(error(
                format!("{at}.vat_id"),
                format!("{vat_id:?} is not a Latvian VAT number (\"LV\" and 11 digits)"),
            ));
        }
    }
    if party.endpoint_scheme == EndpointScheme::LvVat && party.vat_id.is_none() {
        return Err(error(
            format!("{at}.endpoint_scheme"),
            "scheme 9939 (VAT number) needs a vat_id",
        ));
    }
    if let Some(email) = &party.email {
        check_text(&format!("{at}.email"), email, 200)?;
        let ok = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
        });
        if !ok {
            return Err(error(
                format!("{at}.email"),
                format!("{email:?} is not an e-mail address"),
            ));
        }
    }
    Ok(())
}

/// Non-blank, at most `max` characters, and no control characters (which
/// XML 1.0 cannot carry, and which no name or address needs).
fn check_text(at: &str, text: &str, max: usize) -> Result<(), EinvoiceError> {
    if text.trim().is_empty() {
        return Err(error(at, "is empty"));
    }
    if text.chars().count() > max {
        return Err(error(at, format!("is longer than {max} characters")));
    }
    if let Some(bad) = text.chars().find(|c| c.is_control()) {
        return Err(error(
            at,
            format!("contains the control character U+{:04X}", u32::from(bad)),
        ));
    }
    Ok(())
}

/// A minimal indenting XML writer; every text and attribute value goes
/// through [`escape`].
#[derive(Default)]
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn indent(&mut self) {
        for _ in 0..=self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, tag: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{tag}>");
        self.depth += 1;
    }

    fn close(&mut self, tag: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        let _ = writeln!(self.out, "</{tag}>");
    }

    fn leaf(&mut self, tag: &str, text: &str) {
        self.leaf_attr(tag, &[], text);
    }

    fn leaf_attr(&mut self, tag: &str, attributes: &[(&str, &str)], text: &str) {
        self.indent();
        let _ = write!(self.out, "<{tag}");
        for (name, value) in attributes {
            let _ = write!(self.out, " {name}=\"{}\"", escape(value));
        }
        let _ = writeln!(self.out, ">{}</{tag}>", escape(text));
    }

    fn amount(&mut self, tag: &str, amount: Money) {
        self.leaf_attr(tag, &[("currencyID", "EUR")], &amount.to_string());
    }
}

/// Escapes text for XML content and attribute values; characters XML 1.0
/// cannot carry at all become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push('\u{FFFD}');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! The XML details a reader of the file would check; the full documents
    //! are validated against the official rules in `tests/einvoice.rs`.

    use super::*;
    use crate::reconcile::{reconcile, Policies, UsageRecord};
    use crate::settlement::{settle, Ledger, SettlementPeriod, SettlementRequest, VatRules};
    use proptest::prelude::*;
    use shared::model::Benefit;
    use shared::wire::keys::Hash;

    fn party(id: &str, vat_id: Option<&str>) -> Party {
        Party {
            id: id.into(),
            name: format!("{id} <legal name>"),
            registration_number: "40003000001".into(),
            vat_id: vat_id.map(str::to_owned),
            address: Address {
                street: "Iela 1".into(),
                city: "Rīga".into(),
                postal_code: "LV-1010".into(),
                country: "LV".into(),
            },
            endpoint_scheme: EndpointScheme::LvRegistration,
            email: None,
        }
    }

    fn context() -> InvoiceContext {
        InvoiceContext {
            seller: party("canteen", Some("LV40003000001")),
            buyer: party("riga", None),
            iban: "LV80BANK0000435195001".into(),
            bic: None,
            payment_days: 30,
            buyer_reference: None,
        }
    }

    fn loss_compensation_settlement() -> Settlement {
        let benefit: Benefit = serde_json::from_str(
            r#"{"id":"support","provider":"riga","categories":["meal"],"discount":{"amount":"1.20"},
                "funding":"loss_compensation"}"#,
        )
        .expect("benefit JSON in test");
        let records = [UsageRecord {
            terminal: "T-1".into(),
            seq: 1,
            line: 0,
            at: "2026-03-02T12:00:00+02:00".parse().expect("timestamp"),
            recipient: "R-1".into(),
            credential: "c".into(),
            benefit: "support".into(),
            provider: "riga".into(),
            merchant: "canteen".into(),
            category: "meal.lunch".into(),
            amount: Money::from_cents(120),
            count: 1,
            snapshot: 1,
            voided: false,
            record_hash: Hash::of(b"T-1#1"),
        }];
        let benefits = [benefit];
        let decisions = reconcile(&benefits, &Policies::new(), &records)
            .expect("reconciles")
            .decisions;
        settle(
            &benefits,
            &VatRules::latvia(),
            &records,
            &decisions,
            &Ledger::default(),
            &SettlementRequest {
                provider: "riga",
                merchant: "canteen",
                period: SettlementPeriod::month(2026, 3).expect("month"),
                issued_on: jiff::civil::date(2026, 4, 1),
            },
        )
        .expect("settles")
        .expect("something to settle")
    }

    #[test]
    fn escape_covers_markup_and_characters_xml_cannot_carry() {
        assert_eq!(
            escape(r#"A & B <c> "d" 'e'"#),
            "A &amp; B &lt;c&gt; &quot;d&quot; &apos;e&apos;"
        );
        assert_eq!(escape("a\u{1}b\u{FFFF}"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(escape("Rīga\tčetri\n"), "Rīga\tčetri\n");
    }

    #[test]
    fn out_of_scope_invoice_is_category_o_without_vat_identifiers() {
        let settlement = loss_compensation_settlement();
        let documents = render_all(&settlement, &context()).expect("renders");
        assert_eq!(documents.len(), 1);
        let xml = &documents[0].xml;
        assert!(xml.contains("<cbc:ID>O</cbc:ID>"));
        assert!(xml.contains("<cbc:TaxExemptionReasonCode>VATEX-EU-O</cbc:TaxExemptionReasonCode>"));
        assert!(!xml.contains("PartyTaxScheme"), "BR-O-02: no VAT ids");
        assert!(!xml.contains("<cbc:Percent>"), "BR-O-05: no rate");
        assert!(xml.contains("<cbc:Name>canteen &lt;legal name&gt;</cbc:Name>"));
        assert!(xml.contains("<cbc:PayableAmount currencyID=\"EUR\">1.20</cbc:PayableAmount>"));
        assert!(xml.contains("<cbc:DueDate>2026-05-01</cbc:DueDate>"));
        // A loss-compensation invoice needs no seller VAT number either.
        let mut no_vat = context();
        no_vat.seller.vat_id = None;
        assert!(render_all(&settlement, &no_vat).is_ok());
    }

    #[test]
    fn party_data_is_checked_with_the_field_named() {
        let settlement = loss_compensation_settlement();
        type Spoil = fn(&mut InvoiceContext);
        let cases: [(Spoil, &str); 6] = [
            (
                |c| c.seller.registration_number = "4000300000".into(),
                "seller.registration_number",
            ),
            (
                |c| c.buyer.address.country = "lv".into(),
                "buyer.address.country",
            ),
            (|c| c.buyer.name = "   ".into(), "buyer.name"),
            (|c| c.seller.email = Some("nobody".into()), "seller.email"),
            (|c| c.bic = Some("bank".into()), "bic"),
            (
                |c| c.buyer.endpoint_scheme = EndpointScheme::LvVat,
                "buyer.endpoint_scheme",
            ),
        ];
        for (spoil, field) in cases {
            let mut context = context();
            spoil(&mut context);
            let err = render_all(&settlement, &context).expect_err("refused");
            assert_eq!(err.at, field, "{err}");
        }
    }

    proptest! {
        #[test]
        fn quantity_times_unit_price_rounds_back_to_the_net(cents in 1i64..1_000_000_000, quantity in 1u64..2_000_000) {
            let net = Money::from_cents(cents);
            let price = unit_price(net, quantity);
            prop_assert!(price.is_sign_positive());
            prop_assert_eq!(Money::round_half_up(price * Decimal::from(quantity)), net);
        }
    }
}
