//! A stand-in for central's side of the wire, for the agent's tests and
//! benchmark: a central signing key, a credential-hash key, signed
//! snapshots and an enrolled identity written straight into a data
//! directory. Nothing here runs in the daemon.

use std::path::Path;

use jiff::Timestamp;
use shared::wire::credential::credential_hash;
use shared::wire::keys::{PublicKey, SigningKey};
use shared::wire::record::CredentialKind;
use shared::wire::snapshot::{
    SnapshotHeader, SnapshotItem, SnapshotKind, SnapshotType, SnapshotWriter, SNAPSHOT_VERSION,
};
use shared::wire::WireError;

use crate::enrolment::{self, CentralKey, CredentialKey, EnrolmentError, EnrolmentFile};

/// Published test seeds: never used outside tests and benchmarks.
const CENTRAL_SEED: [u8; 32] = [7; 32];
const CREDENTIAL_KEY: [u8; 32] = [9; 32];

pub struct TestCentral {
    pub key: SigningKey,
    pub credential_key: Vec<u8>,
    pub credential_key_id: String,
    pub terminal: String,
    pub merchant: String,
}

impl TestCentral {
    pub fn new(terminal: &str, merchant: &str) -> Result<TestCentral, WireError> {
        Ok(TestCentral {
            key: SigningKey::from_seed(&CENTRAL_SEED)?,
            credential_key: CREDENTIAL_KEY.to_vec(),
            credential_key_id: "ck-test".into(),
            terminal: terminal.into(),
            merchant: merchant.into(),
        })
    }

    pub fn public_keys(&self) -> Vec<PublicKey> {
        vec![self.key.public_key()]
    }

    /// The keyed hash of a card UID, as central puts it in snapshots.
    pub fn card_hash(&self, uid: &str) -> String {
        credential_hash(&self.credential_key, CredentialKind::Card, uid)
    }

    pub fn header(
        &self,
        kind: SnapshotKind,
        version: u64,
        base: Option<u64>,
        built_at: Timestamp,
    ) -> SnapshotHeader {
        SnapshotHeader {
            base,
            built_at,
            credential_key_id: self.credential_key_id.clone(),
            key_id: self.key.key_id(),
            kind,
            merchant: self.merchant.clone(),
            terminal: self.terminal.clone(),
            snapshot_type: SnapshotType::Snapshot,
            v: SNAPSHOT_VERSION,
            version,
        }
    }

    /// A signed snapshot with `items`.
    pub fn snapshot<'a>(
        &self,
        header: &SnapshotHeader,
        items: impl IntoIterator<Item = &'a SnapshotItem>,
    ) -> Result<Vec<u8>, WireError> {
        let mut writer = SnapshotWriter::new(Vec::new(), header)?;
        for item in items {
            writer.push(item)?;
        }
        writer.finish(&self.key)
    }

    pub fn enrolment_file(&self, central_url: &str) -> EnrolmentFile {
        use base64::Engine;
        EnrolmentFile {
            v: 1,
            central_url: central_url.into(),
            terminal: self.terminal.clone(),
            merchant: self.merchant.clone(),
            central_keys: vec![CentralKey {
                key_id: self.key.key_id(),
                public_key: self.key.public_key(),
            }],
            credential_key: CredentialKey {
                key_id: self.credential_key_id.clone(),
                key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.credential_key),
            },
            categories: vec!["meal".into(), "transport".into()],
            enrolled_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// Writes an enrolled identity (a fresh terminal key) into `data_dir`
    /// and returns the terminal's public key.
    pub fn enrol_into(
        &self,
        data_dir: &Path,
        central_url: &str,
        ca_pem: &[u8],
    ) -> Result<PublicKey, EnrolmentError> {
        let (key, pkcs8) = SigningKey::generate(&ring::rand::SystemRandom::new())
            .map_err(|err| EnrolmentError::Invalid(err.to_string()))?;
        enrolment::write_identity(data_dir, &pkcs8, &self.enrolment_file(central_url), ca_pem)?;
        Ok(key.public_key())
    }
}
