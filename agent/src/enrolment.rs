//! The terminal's identity: its Ed25519 key (`terminal.key`, PKCS#8, mode
//! 0600), what central told it at enrolment (`enrolment.json`, mode 0600
//! because it holds the credential-hash key), and central's CA certificate
//! (`central-ca.pem`). All three live in the data directory.
//!
//! [`enrol`] performs `POST /api/v1/enrol` of `docs/sync-protocol.md`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use shared::wire::keys::{PublicKey, SigningKey};

pub const KEY_FILE: &str = "terminal.key";
pub const ENROLMENT_FILE: &str = "enrolment.json";
pub const CA_FILE: &str = "central-ca.pem";

/// A central signing key as central announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralKey {
    pub key_id: String,
    pub public_key: PublicKey,
}

/// The credential-hash key; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialKey {
    pub key_id: String,
    /// base64url, no padding.
    pub key: String,
}

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialKey({}, secret redacted)", self.key_id)
    }
}

impl CredentialKey {
    pub fn bytes(&self) -> Result<Vec<u8>, EnrolmentError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.key)
            .map_err(|_| EnrolmentError::Invalid("credential_key.key is not base64url".into()))
    }
}

/// What `enrolment.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentFile {
    pub v: u32,
    pub central_url: String,
    pub terminal: String,
    pub merchant: String,
    pub central_keys: Vec<CentralKey>,
    pub credential_key: CredentialKey,
    #[serde(default)]
    pub categories: Vec<String>,
    pub enrolled_at: String,
}

/// The loaded identity, ready to use.
pub struct Enrolment {
    pub file: EnrolmentFile,
    pub key: SigningKey,
    pub credential_key: Vec<u8>,
    pub central_keys: Vec<PublicKey>,
    pub ca_pem: Vec<u8>,
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolment")
            .field("terminal", &self.file.terminal)
            .field("merchant", &self.file.merchant)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    #[error("not enrolled: {0} is missing; run `agent enroll` first")]
    NotEnrolled(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("already enrolled as terminal {0}; remove the data directory to enrol again")]
    AlreadyEnrolled(String),
    #[error("enrolment refused by central ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot reach central at {url}: {message}")]
    Unreachable { url: String, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EnrolmentError + '_ {
    move |source| EnrolmentError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Enrolment {
    /// Loads the identity from `data_dir`, checking that every piece agrees.
    pub fn load(data_dir: &Path) -> Result<Enrolment, EnrolmentError> {
        let enrolment_path = data_dir.join(ENROLMENT_FILE);
        if !enrolment_path.exists() {
            return Err(EnrolmentError::NotEnrolled(
                enrolment_path.display().to_string(),
            ));
        }
        let text = fs::read(&enrolment_path).map_err(io_error(&enrolment_path))?;
        let mut de = serde_json::Deserializer::from_slice(&text);
        let file: EnrolmentFile = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            EnrolmentError::Invalid(format!(
                "{}: {}: {}",
                enrolment_path.display(),
                err.path(),
                err.inner()
            ))
        })?;
        let key_path = data_dir.join(KEY_FILE);
        check_private(&key_path)?;
        check_private(&enrolment_path)?;
        let pkcs8 = fs::read(&key_path).map_err(io_error(&key_path))?;
        let key = SigningKey::from_pkcs8(&pkcs8)
            .map_err(|err| EnrolmentError::Invalid(format!("{}: {err}", key_path.display())))?;
        let ca_path = data_dir.join(CA_FILE);
        let ca_pem = fs::read(&ca_path).map_err(io_error(&ca_path))?;
        let credential_key = file.credential_key.bytes()?;
        let central_keys = check_central_keys(&file.central_keys)?;
        Ok(Enrolment {
            file,
            key,
            credential_key,
            central_keys,
            ca_pem,
        })
    }

    pub fn terminal(&self) -> &str {
        &self.file.terminal
    }

    pub fn merchant(&self) -> &str {
        &self.file.merchant
    }
}

/// Every announced key id must be the id of its key: central names the key
/// that signed a snapshot by id, and a mismatch would be a forged alias.
fn check_central_keys(keys: &[CentralKey]) -> Result<Vec<PublicKey>, EnrolmentError> {
    if keys.is_empty() {
        return Err(EnrolmentError::Invalid("central_keys is empty".into()));
    }
    keys.iter()
        .enumerate()
        .map(|(idx, key)| {
            if key.public_key.key_id() == key.key_id {
                Ok(key.public_key)
            } else {
                Err(EnrolmentError::Invalid(format!(
                    "central_keys[{idx}]: key_id {:?} is not the id of its public key ({})",
                    key.key_id,
                    key.public_key.key_id()
                )))
            }
        })
        .collect()
}

/// Refuses a secret file that others can read.
fn check_private(path: &Path) -> Result<(), EnrolmentError> {
    let meta = fs::metadata(path).map_err(io_error(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(EnrolmentError::Invalid(format!(
            "{}: mode {mode:o} lets other users read a secret; run chmod 600 on it",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to a new file with mode 0600, fsync'd; never overwrites.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EnrolmentError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// What `agent enroll` is given.
#[derive(Debug, Clone)]
pub struct EnrolRequest {
    pub data_dir: PathBuf,
    pub central_url: String,
    pub ca_pem_path: PathBuf,
    pub code: String,
    pub label: String,
    pub timeout: Duration,
}

#[derive(Serialize)]
struct EnrolBody<'a> {
    code: &'a str,
    public_key: PublicKey,
    label: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolAnswer {
    terminal: String,
    merchant: String,
    central_keys: Vec<CentralKey>,
    credential_key: CredentialKey,
    #[serde(default)]
    categories: Vec<String>,
}

/// An HTTPS client that trusts exactly central's CA.
pub fn https_client(ca_pem: &[u8], timeout: Duration) -> Result<reqwest::Client, EnrolmentError> {
    let ca = reqwest::Certificate::from_pem(ca_pem)
        .map_err(|err| EnrolmentError::Invalid(format!("central CA certificate: {err}")))?;
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .https_only(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .build()
        .map_err(|err| EnrolmentError::Invalid(format!("building HTTPS client: {err}")))
}

/// Generates the terminal key, registers it with central using the
/// one-time code, and stores what central answered. The key file is
/// written first, so a failed registration leaves no half identity: rerun
/// `agent enroll` after removing `terminal.key`, or reuse it (it is kept
/// and sent again when present and no enrolment exists yet).
pub async fn enrol(
    request: &EnrolRequest,
    rng: &dyn ring::rand::SecureRandom,
) -> Result<EnrolmentFile, EnrolmentError> {
    let enrolment_path = request.data_dir.join(ENROLMENT_FILE);
    if enrolment_path.exists() {
        let existing = Enrolment::load(&request.data_dir)
            .map(|enrolment| enrolment.file.terminal)
            .unwrap_or_else(|_| "(unreadable enrolment)".into());
        return Err(EnrolmentError::AlreadyEnrolled(existing));
    }
    let code = request.code.trim();
    if code.is_empty() || code.len() > 128 {
        return Err(EnrolmentError::Invalid(
            "--code: give the one-time enrolment code".into(),
        ));
    }
    let central_url = request.central_url.trim_end_matches('/').to_owned();
    if !central_url.starts_with("https://") {
        return Err(EnrolmentError::Invalid(format!(
            "--central {central_url:?}: must be an https:// URL"
        )));
    }
    let ca_pem = fs::read(&request.ca_pem_path).map_err(io_error(&request.ca_pem_path))?;
    let client = https_client(&ca_pem, request.timeout)?;

    fs::create_dir_all(&request.data_dir).map_err(io_error(&request.data_dir))?;
    let key_path = request.data_dir.join(KEY_FILE);
    let key = if key_path.exists() {
        check_private(&key_path)?;
        let pkcs8 = fs::read(&key_path).map_err(io_error(&key_path))?;
        SigningKey::from_pkcs8(&pkcs8)
            .map_err(|err| EnrolmentError::Invalid(format!("{}: {err}", key_path.display())))?
    } else {
        let (key, pkcs8) = SigningKey::generate(rng).map_err(|err| {
            EnrolmentError::Invalid(format!("generating the terminal key: {err}"))
        })?;
        write_private(&key_path, &pkcs8)?;
        key
    };

    let url = format!("{central_url}/api/v1/enrol");
    let response = client
        .post(&url)
        .json(&EnrolBody {
            code,
            public_key: key.public_key(),
            label: &request.label,
        })
        .send()
        .await
        .map_err(|err| EnrolmentError::Unreachable {
            url: url.clone(),
            message: error_chain(&err),
        })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| EnrolmentError::Unreachable {
            url: url.clone(),
            message: error_chain(&err),
        })?;
    if !status.is_success() {
        return Err(EnrolmentError::Refused {
            status: status.as_u16(),
            message: central_error_message(&bytes),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let answer: EnrolAnswer = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        EnrolmentError::Invalid(format!(
            "central's enrolment answer: {}: {}",
            err.path(),
            err.inner()
        ))
    })?;
    check_central_keys(&answer.central_keys)?;
    if !shared::validate::is_valid_id(&answer.terminal)
        || !shared::validate::is_valid_id(&answer.merchant)
    {
        return Err(EnrolmentError::Invalid(
            "central's enrolment answer: terminal or merchant is not a valid id".into(),
        ));
    }
    answer.credential_key.bytes()?;
    let file = EnrolmentFile {
        v: 1,
        central_url,
        terminal: answer.terminal,
        merchant: answer.merchant,
        central_keys: answer.central_keys,
        credential_key: answer.credential_key,
        categories: answer.categories,
        enrolled_at: jiff::Timestamp::now().to_string(),
    };
    let ca_path = request.data_dir.join(CA_FILE);
    if ca_path.exists() {
        fs::remove_file(&ca_path).map_err(io_error(&ca_path))?;
    }
    write_private(&ca_path, &ca_pem)?;
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|err| EnrolmentError::Invalid(format!("encoding enrolment: {err}")))?;
    // Written last: its presence means "enrolled".
    write_private(&enrolment_path, &json)?;
    Ok(file)
}

/// Writes an identity directly, for tests and tools that stand in for
/// central (the same files `enrol` writes).
pub fn write_identity(
    data_dir: &Path,
    key_pkcs8: &[u8],
    file: &EnrolmentFile,
    ca_pem: &[u8],
) -> Result<(), EnrolmentError> {
    fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    write_private(&data_dir.join(KEY_FILE), key_pkcs8)?;
    write_private(&data_dir.join(CA_FILE), ca_pem)?;
    let json = serde_json::to_vec_pretty(file)
        .map_err(|err| EnrolmentError::Invalid(format!("encoding enrolment: {err}")))?;
    write_private(&data_dir.join(ENROLMENT_FILE), &json)
}

/// The `message` of central's JSON error, or the start of the body.
pub fn central_error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorInner,
    }
    #[derive(Deserialize)]
    struct ErrorInner {
        code: String,
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => format!("{}: {}", parsed.error.code, parsed.error.message),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// An error with its causes, which reqwest keeps in `source()`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
