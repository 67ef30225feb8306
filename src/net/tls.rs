//! SIP over TLS (RFC 3261 26.2.1): the server's certificate chain and key from PEM files,
//! reloaded when either file changes, so a renewed certificate serves the next connection
//! without a restart (connections already open keep theirs). A file that no longer loads is
//! logged and the previous certificate goes on serving.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    Read(String, String),
    #[error("{0}: no certificate in it")]
    NoCertificate(String),
    #[error("TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

/// The current acceptor, rebuilt when the files change.
pub struct Certificates {
    files: TlsFiles,
    current: Mutex<(Stamp, TlsAcceptor)>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificates({:?})", self.files)
    }
}

/// The files' modification times, to notice a change.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(files: &TlsFiles) -> Stamp {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&files.cert), modified(&files.key))
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let shown = |p: &PathBuf| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Read(shown(&files.cert), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(shown(&files.cert)));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Read(shown(&files.key), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // TLS 1.2 and 1.3 (rustls's safe defaults): SIP phones and carriers still use 1.2.
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Certificates {
    /// Loads the files; an error here stops the server from starting.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(Self {
            current: Mutex::new((stamp(&files), acceptor)),
            files,
        })
    }

    /// The acceptor for a new connection: reloaded first if a file changed since.
    pub fn acceptor(&self) -> TlsAcceptor {
        let now = stamp(&self.files);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != now {
            match acceptor(&self.files) {
                Ok(fresh) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                    *current = (now, fresh);
                }
                Err(e) => {
                    // Keep serving with the old one; say so once per change.
                    tracing::error!("TLS certificate not reloaded, the previous one serves: {e}");
                    current.0 = now;
                }
            }
        }
        current.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &std::path::Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join("chain.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    fn touch(path: &std::path::Path, secs: u64) {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[test]
    fn certificates_reload_when_the_files_change_and_a_broken_file_keeps_the_old_one() {
        let dir = std::env::temp_dir().join(format!("voxnav-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = self_signed(&dir, "a.example");
        let certificates = Certificates::load(files.clone()).unwrap();
        let first = certificates.current.lock().unwrap().0;
        // A renewed certificate: the next connection's acceptor is rebuilt.
        self_signed(&dir, "b.example");
        touch(&files.cert, 2_000_000_000);
        touch(&files.key, 2_000_000_000);
        certificates.acceptor();
        let renewed = certificates.current.lock().unwrap().0;
        assert_ne!(first, renewed);
        // A broken file: logged, the previous certificate goes on serving.
        std::fs::write(&files.cert, "not a certificate").unwrap();
        touch(&files.cert, 2_000_000_100);
        certificates.acceptor();
        assert!(Certificates::load(files.clone()).is_err());
        // At start, a missing or empty file is an error naming it.
        let missing = TlsFiles {
            cert: dir.join("nope.pem"),
            key: files.key.clone(),
        };
        let e = Certificates::load(missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
