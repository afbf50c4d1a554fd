//! HTTPS, and client certificates as credentials of service identities (mTLS).
//!
//! Every org has its own client CA, so the handshake cannot know which CA to check a certificate
//! against before it knows the org. The handshake therefore asks for a certificate, proves the
//! client holds its private key (rustls checks the CertificateVerify signature) and records it;
//! the request then reads the org and service from the certificate's URI SAN
//! (`spiffe://gatehouse/org/<org>/service/<service>`) and verifies the chain against **that
//! org's CA only**, with the usual WebPKI rules (validity, client-auth key usage). A certificate
//! from one org's CA can therefore never name a service of another org.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The URI SAN prefix of a service identity's certificate.
pub const SPIFFE_PREFIX: &str = "spiffe://gatehouse/org/";

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration from PEM files: the server's certificate chain and key; client
/// certificates are asked for, not required (tokens and sessions still work over HTTPS).
pub fn server_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file_err = |p: &std::path::Path, e: &dyn std::fmt::Display| TlsError::File {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_err(cert_file, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert_file, &e))?;
    if certs.is_empty() {
        return Err(file_err(cert_file, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| file_err(key_file, &e))?;
    let provider = provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(KeyHolder(provider)))
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Asks for a client certificate and checks the client holds its key; the chain is verified per
/// request against the org's CA (see the module documentation).
#[derive(Debug)]
struct KeyHolder(Arc<CryptoProvider>);

impl ClientCertVerifier for KeyHolder {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently, so one slow client cannot
/// hold up the others.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS on `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer of an HTTPS connection: its address and the client certificate chain it presented.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address.
    pub addr: SocketAddr,
    /// The chain, end entity first, when the client presented one.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, conn) = stream.io().get_ref();
        let certs = conn.peer_certificates().map(|c| Arc::new(c.iter().map(|d| d.clone().into_owned()).collect()));
        Peer { addr: *stream.remote_addr(), certs }
    }
}

/// What a client certificate claims, before the org's CA has vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedIdentity {
    /// The org's name.
    pub org: String,
    /// The service identity's name.
    pub service: String,
}

/// The identity a certificate's URI SAN names, if exactly one Gatehouse SPIFFE ID is present.
pub fn claimed_identity(end_entity: &CertificateDer<'_>) -> Result<ClaimedIdentity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| "the client certificate cannot be parsed".to_owned())?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| "the client certificate's subject alternative names are malformed".to_owned())?;
    let uris: Vec<&str> = san
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .filter(|u| u.starts_with(SPIFFE_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(format!(
            "the client certificate must carry exactly one URI SAN `{SPIFFE_PREFIX}<org>/service/<name>`"
        ));
    };
    let rest = &uri[SPIFFE_PREFIX.len()..];
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [org, "service", service] if !org.is_empty() && !service.is_empty() => {
            Ok(ClaimedIdentity { org: (*org).to_owned(), service: (*service).to_owned() })
        }
        _ => {
            Err(format!("`{}` is not `{SPIFFE_PREFIX}<org>/service/<name>`", uri.chars().take(120).collect::<String>()))
        }
    }
}

/// Parses and checks an org's client CA PEM: at least one certificate, each a CA. Returns the
/// SHA-256 fingerprint of the first.
pub fn check_ca_pem(pem: &str) -> Result<String, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    let Some(first) = certs.first() else { return Err("no certificate in the PEM".to_owned()) };
    for c in &certs {
        let (_, cert) =
            x509_parser::parse_x509_certificate(c.as_ref()).map_err(|_| "a certificate cannot be parsed".to_owned())?;
        if !cert.is_ca() {
            return Err(format!("`{}` is not a CA certificate", cert.subject()));
        }
    }
    Ok(hex::encode(Sha256::digest(first.as_ref())))
}

/// Verifies `chain` (end entity first) against the CA certificates in `ca_pem`, for client
/// authentication, now.
pub fn verify_chain(ca_pem: &str, chain: &[CertificateDer<'static>]) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let c = c.map_err(|e| format!("the org's client CA is unreadable: {e}"))?;
        roots.add(c).map_err(|e| format!("the org's client CA is unusable: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("the org's client CA is unusable: {e}"))?;
    let (end, intermediates) = chain.split_first().ok_or("no client certificate")?;
    verifier
        .verify_client_cert(end, intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("the client certificate was refused: {e}"))
}

/// A stable id for a certificate, in the form of a token id (for audit records).
pub fn cert_token_id(end_entity: &CertificateDer<'_>) -> gatehouse_core::TokenId {
    let digest = hex::encode(Sha256::digest(end_entity.as_ref()));
    format!("tok_{}", &digest[..32]).parse().unwrap_or_else(|_| gatehouse_core::TokenId::generate())
}
