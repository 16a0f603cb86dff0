//! ISO 11649 structured creditor references (`RF18539007547034`) and the
//! ISO 7064 MOD 97-10 check they share with IBANs.
//!
//! Every issued settlement carries a creditor reference so that the
//! provider's payment can be matched to it automatically: the provider's
//! bank transfer quotes it, the bank statement returns it, and the register
//! looks it up. The reference of a settlement is derived from its number
//! ([`CreditorReference::for_settlement`]), so it needs no counter and is
//! the same every time the settlement is rendered.
//!
//! Deliberately absent: any bank or network access; only the check digits.

use std::fmt;

use shared::wire::keys::Hash;

/// Longest reference body after `RF` and the two check digits (ISO 11649:
/// at most 25 characters in all).
pub const BODY_LEN_MAX: usize = 21;

/// Why a text is not a creditor reference (or an IBAN).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditorRefError {
    #[error("creditor reference {0:?}: the reference part is empty")]
    Empty(String),
    #[error("creditor reference {0:?}: the reference part is longer than 21 characters")]
    TooLong(String),
    #[error("creditor reference {0:?}: only letters A-Z and digits 0-9 are allowed")]
    BadCharacter(String),
    #[error("creditor reference {0:?}: does not start with \"RF\" and two check digits")]
    NoPrefix(String),
    #[error("creditor reference {0:?}: check digits do not match (ISO 11649 MOD 97-10)")]
    BadCheckDigits(String),
}

/// A structured creditor reference in electronic format: `RF`, two check
/// digits, then 1 to 21 upper-case letters or digits, without spaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreditorReference(String);

impl CreditorReference {
    /// Builds the reference for `body`, computing the check digits.
    /// Lower-case letters are taken as upper case; spaces are refused
    /// because a body is an identifier, not a printed form.
    pub fn new(body: &str) -> Result<CreditorReference, CreditorRefError> {
        let body = body.to_ascii_uppercase();
        check_body(&body, &body)?;
        // Check digits: 98 − ((body ‖ "RF00") mod 97), as two digits.
        let remainder = mod97(body.bytes().chain(*b"RF00")).unwrap_or(0);
        let check = 98 - remainder;
        Ok(CreditorReference(format!("RF{check:02}{body}")))
    }

    /// Parses a reference in electronic (`RF18539007547034`) or print
    /// (`RF18 5390 0754 7034`) format, in any letter case, and verifies its
    /// check digits.
    pub fn parse(text: &str) -> Result<CreditorReference, CreditorRefError> {
        let compact: String = text
            .chars()
            .filter(|c| *c != ' ')
            .collect::<String>()
            .to_ascii_uppercase();
        let prefix_ok = compact.len() >= 4
            && compact.starts_with("RF")
            && compact.as_bytes()[2..4].iter().all(u8::is_ascii_digit);
        if !prefix_ok {
            return Err(CreditorRefError::NoPrefix(text.to_owned()));
        }
        check_body(&compact[4..], text)?;
        // Valid when (body ‖ "RF" ‖ check digits) mod 97 = 1.
        let rotated = compact[4..].bytes().chain(compact[..4].bytes());
        if mod97(rotated) != Some(1) {
            return Err(CreditorRefError::BadCheckDigits(text.to_owned()));
        }
        Ok(CreditorReference(compact))
    }

    /// The reference of a settlement: 21 decimal digits taken from the
    /// SHA-256 of its number. Digits only, because some payment channels
    /// mangle letters; 10²¹ values, so that among a million settlements the
    /// chance of any two sharing a reference is about 5 × 10⁻¹⁰ (the store
    /// still keeps a unique index and refuses a clash).
    pub fn for_settlement(number: &str) -> CreditorReference {
        let hash = Hash::of(number.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash.0[..16]);
        let digits = u128::from_be_bytes(first) % 10u128.pow(21);
        // A 21-digit decimal body is always valid, so `new` cannot fail here.
        let body = format!("{digits:021}");
        CreditorReference::new(&body).unwrap_or(CreditorReference(body))
    }

    /// Electronic format, as it goes into `cbc:PaymentID`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `RF` and the check digits.
    pub fn body(&self) -> &str {
        &self.0[4..]
    }

    /// Print format: groups of four characters separated by spaces.
    pub fn print_format(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + self.0.len() / 4);
        for (idx, c) in self.0.chars().enumerate() {
            if idx > 0 && idx % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Display for CreditorReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CreditorReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CreditorReference({})", self.0)
    }
}

impl serde::Serialize for CreditorReference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CreditorReference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CreditorReference::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn check_body(body: &str, original: &str) -> Result<(), CreditorRefError> {
    if body.is_empty() {
        return Err(CreditorRefError::Empty(original.to_owned()));
    }
    if body.len() > BODY_LEN_MAX {
        return Err(CreditorRefError::TooLong(original.to_owned()));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err(CreditorRefError::BadCharacter(original.to_owned()));
    }
    Ok(())
}

/// ISO 7064 MOD 97-10 over characters already in check order: digits are
/// themselves, letters A..Z are 10..35. `None` for any other character.
/// Computed digit by digit so that no length can overflow.
pub fn mod97(chars: impl IntoIterator<Item = u8>) -> Option<u32> {
    let mut remainder: u32 = 0;
    for c in chars {
        match c {
            b'0'..=b'9' => remainder = (remainder * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => {
                let value = u32::from(c - b'A') + 10;
                remainder = (remainder * 100 + value) % 97;
            }
            _ => return None,
        }
    }
    Some(remainder)
}

/// `true` for an IBAN in electronic format (no spaces, upper case) whose
/// length fits ISO 13616 and whose check digits verify. A Latvian IBAN is
/// additionally exactly 21 characters.
pub fn iban_is_valid(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    if !(15..=34).contains(&bytes.len())
        || !bytes[..2].iter().all(u8::is_ascii_uppercase)
        || !bytes[2..4].iter().all(u8::is_ascii_digit)
        || !bytes[4..]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    if iban.starts_with("LV") && bytes.len() != 21 {
        return false;
    }
    mod97(bytes[4..].iter().chain(&bytes[..4]).copied()) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_example_has_check_digits_18() {
        // The example of ISO 11649 (also in the EPC's guidance):
        // reference 539007547034 → RF18 5390 0754 7034.
        let reference = CreditorReference::new("539007547034").expect("valid body");
        assert_eq!(reference.as_str(), "RF18539007547034");
        assert_eq!(reference.print_format(), "RF18 5390 0754 7034");
        assert_eq!(reference.body(), "539007547034");
        assert_eq!(
            CreditorReference::parse("RF18 5390 0754 7034").expect("print format parses"),
            reference
        );
        // Leading zeros do not change MOD 97, so the padded form has the same check digits.
        assert_eq!(
            CreditorReference::new("000000000539007547034")
                .expect("21 characters")
                .as_str(),
            "RF18000000000539007547034"
        );
    }

    #[test]
    fn letters_count_as_10_to_35() {
        // Example of the Finnish and Slovenian bank guidance: RF71 2348 231 and RF45G72UUR.
        assert_eq!(
            CreditorReference::new("2348231").expect("digits").as_str(),
            "RF712348231"
        );
        assert_eq!(
            CreditorReference::new("g72uur").expect("letters").as_str(),
            "RF45G72UUR"
        );
        assert!(CreditorReference::parse("rf45g72uur").is_ok());
    }

    #[test]
    fn refuses_wrong_check_digits_and_malformed_text() {
        assert_eq!(
            CreditorReference::parse("RF19539007547034"),
            Err(CreditorRefError::BadCheckDigits("RF19539007547034".into()))
        );
        // Two swapped digits are caught.
        assert!(CreditorReference::parse("RF18539007547043").is_err());
        assert!(matches!(
            CreditorReference::parse("XX18539007547034"),
            Err(CreditorRefError::NoPrefix(_))
        ));
        assert!(matches!(
            CreditorReference::parse("RF18"),
            Err(CreditorRefError::Empty(_))
        ));
        assert!(matches!(
            CreditorReference::new("1234567890123456789012"),
            Err(CreditorRefError::TooLong(_))
        ));
        assert!(matches!(
            CreditorReference::new("12-34"),
            Err(CreditorRefError::BadCharacter(_))
        ));
        assert!(matches!(
            CreditorReference::new("ĀB"),
            Err(CreditorRefError::BadCharacter(_))
        ));
    }

    #[test]
    fn settlement_reference_is_stable_valid_and_distinct() {
        let first = CreditorReference::for_settlement("S-riga-skolas-edinasana-2026-03-1");
        let again = CreditorReference::for_settlement("S-riga-skolas-edinasana-2026-03-1");
        let second = CreditorReference::for_settlement("S-riga-skolas-edinasana-2026-03-2");
        assert_eq!(first, again);
        assert_ne!(first, second);
        assert_eq!(first.as_str().len(), 25);
        assert!(first.body().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            CreditorReference::parse(first.as_str()).expect("verifies"),
            first
        );
    }

    #[test]
    fn iban_check() {
        // Examples from the SWIFT IBAN registry.
        assert!(iban_is_valid("LV80BANK0000435195001"));
        assert!(iban_is_valid("GB82WEST12345698765432"));
        assert!(!iban_is_valid("LV81BANK0000435195001"));
        assert!(
            !iban_is_valid("LV80BANK000043519500"),
            "Latvian IBANs have 21 characters"
        );
        assert!(
            !iban_is_valid("LV80 BANK 0000 4351 9500 1"),
            "electronic format only"
        );
        assert!(!iban_is_valid(""));
    }
}
