//! Central's secrets in the data directory: the Ed25519 keys that sign
//! snapshots, and the credential-hash key. Created on first start, read on
//! every start; private key files are written with mode 0600.
//!
//! Layout (see `docs/operations.md`):
//! - `central-keys/<key_id>.pk8`: every signing key, PKCS#8 (ring's format);
//! - `central-keys/current`: the key id that signs from now on;
//! - `credential.key`: 32 random bytes, the HMAC key of credential hashes.
//!
//! Rotation of the signing key ([`rotate_signing_key`]) adds a key and makes
//! it current; older keys stay listed, so terminals enrolled with them keep
//! verifying until they are re-enrolled.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use shared::wire::keys::{Hash, PublicKey, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, err: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.to_owned(),
        message: err.to_string(),
    }
}

/// The keys central works with.
pub struct Keys {
    pub signing: SigningKey,
    /// Every signing key's public half, current first.
    pub public: Vec<PublicKey>,
    pub credential_key: Vec<u8>,
    pub credential_key_id: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("signing", &self.signing.key_id())
            .field("credential_key_id", &self.credential_key_id)
            .finish_non_exhaustive()
    }
}

/// Writes a secret file readable by its owner only; refuses to overwrite.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| file_error(path, err))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|err| file_error(path, err))
}

fn random_bytes(len: usize) -> Result<Vec<u8>, KeyError> {
    let mut out = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| KeyError::Invalid("the system random source failed".into()))?;
    Ok(out)
}

/// A random secret as base64url text (tokens, enrolment codes).
pub fn random_token(len: usize) -> Result<String, KeyError> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(len)?))
}

/// `hex(SHA-256(text))`: how tokens and enrolment codes are stored.
pub fn secret_hash(text: &str) -> String {
    Hash::of(text.as_bytes()).to_hex()
}

/// The key id of a credential-hash key: first 8 bytes of its SHA-256, hex.
pub fn credential_key_id(key: &[u8]) -> String {
    hex::encode(&Hash::of(key).0[..8])
}

/// Loads the keys, creating any that are missing.
pub fn load_or_create(dir: &Path) -> Result<Keys, KeyError> {
    let key_dir = dir.join("central-keys");
    fs::create_dir_all(&key_dir).map_err(|err| file_error(&key_dir, err))?;
    let current_path = key_dir.join("current");
    if !current_path.exists() {
        rotate_signing_key(dir)?;
    }
    let current =
        fs::read_to_string(&current_path).map_err(|err| file_error(&current_path, err))?;
    let current = current.trim();
    let mut signing = None;
    let mut public = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(&key_dir)
        .map_err(|err| file_error(&key_dir, err))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "pk8"))
        .collect();
    entries.sort();
    for path in entries {
        let bytes = fs::read(&path).map_err(|err| file_error(&path, err))?;
        let key = SigningKey::from_pkcs8(&bytes).map_err(|err| file_error(&path, err))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if stem != key.key_id() {
            return Err(file_error(
                &path,
                format!("holds key {} but is named after another", key.key_id()),
            ));
        }
        if key.key_id() == current {
            public.insert(0, key.public_key());
            signing = Some(key);
        } else {
            public.push(key.public_key());
        }
    }
    let signing = signing.ok_or_else(|| {
        file_error(
            &current_path,
            format!("names key {current} but central-keys/{current}.pk8 is missing"),
        )
    })?;
    let credential_path = dir.join("credential.key");
    if !credential_path.exists() {
        write_secret(&credential_path, &random_bytes(32)?)?;
    }
    let credential_key =
        fs::read(&credential_path).map_err(|err| file_error(&credential_path, err))?;
    if credential_key.len() != 32 {
        return Err(file_error(&credential_path, "must hold exactly 32 bytes"));
    }
    Ok(Keys {
        signing,
        public,
        credential_key_id: credential_key_id(&credential_key),
        credential_key,
    })
}

/// Creates a new signing key and makes it current; returns its key id.
pub fn rotate_signing_key(dir: &Path) -> Result<String, KeyError> {
    let key_dir = dir.join("central-keys");
    fs::create_dir_all(&key_dir).map_err(|err| file_error(&key_dir, err))?;
    let (key, pkcs8) = SigningKey::generate(&SystemRandom::new())
        .map_err(|err| KeyError::Invalid(err.to_string()))?;
    let key_id = key.key_id();
    write_secret(&key_dir.join(format!("{key_id}.pk8")), &pkcs8)?;
    // Written to a temporary file and renamed, so `current` is never half written.
    let tmp = key_dir.join("current.tmp");
    fs::write(&tmp, format!("{key_id}\n")).map_err(|err| file_error(&tmp, err))?;
    let current = key_dir.join("current");
    fs::rename(&tmp, &current).map_err(|err| file_error(&current, err))?;
    Ok(key_id)
}
