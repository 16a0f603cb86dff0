//! TLS for central: its own certificate authority in the data directory.
//!
//! On first start central creates `ca.pem` / `ca.key` (a private CA) and a
//! server certificate `server.pem` / `server.key` for `localhost`,
//! `127.0.0.1` and any extra names given, signed by that CA. Terminals trust
//! exactly `ca.pem`, handed to them at enrolment. An operator who has a
//! certificate from another CA replaces `server.pem` / `server.key`.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::keys::{write_secret, KeyError};

fn tls_error(err: impl std::fmt::Display) -> KeyError {
    KeyError::Invalid(format!("tls: {err}"))
}

/// Creates the CA and server certificate when `ca.pem` does not exist yet.
/// `names`: DNS names or IP addresses the server certificate covers.
pub fn ensure_certificates(dir: &Path, names: &[String]) -> Result<(), KeyError> {
    let ca_path = dir.join("ca.pem");
    if ca_path.exists() {
        return Ok(());
    }
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "benefits central CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;

    let mut all_names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for name in names {
        if !all_names.contains(name) {
            all_names.push(name.clone());
        }
    }
    let server_key = KeyPair::generate().map_err(tls_error)?;
    let mut server_params = CertificateParams::new(all_names).map_err(tls_error)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "benefits central");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    server_params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    let server_cert = server_params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(tls_error)?;

    write_secret(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    write_secret(
        &dir.join("server.key"),
        server_key.serialize_pem().as_bytes(),
    )?;
    let server_path = dir.join("server.pem");
    fs::write(&server_path, server_cert.pem()).map_err(|err| KeyError::File {
        path: server_path.clone(),
        message: err.to_string(),
    })?;
    // ca.pem last: its presence means the set is complete.
    fs::write(&ca_path, ca_cert.pem()).map_err(|err| KeyError::File {
        path: ca_path.clone(),
        message: err.to_string(),
    })?;
    Ok(())
}

/// The rustls server configuration from `server.pem` / `server.key`.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, KeyError> {
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    let cert_pem = fs::read(&cert_path).map_err(|err| KeyError::File {
        path: cert_path.clone(),
        message: err.to_string(),
    })?;
    let key_pem = fs::read(&key_path).map_err(|err| KeyError::File {
        path: key_path.clone(),
        message: err.to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|err| KeyError::File {
            path: cert_path.clone(),
            message: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(KeyError::File {
            path: cert_path,
            message: "holds no certificate".into(),
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|err| KeyError::File {
            path: key_path.clone(),
            message: err.to_string(),
        })?
        .ok_or_else(|| KeyError::File {
            path: key_path.clone(),
            message: "holds no private key".into(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
