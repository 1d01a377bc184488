//! TLS for client and member traffic (rustls on ring): what a server presents
//! ([`TlsIdentity`]), what a client or a member connecting to another trusts ([`TlsTrust`]),
//! and the handshakes.
//!
//! Clients check a member's certificate against the cluster's CA and one name for the whole
//! cluster ([`TLS_NAME_DEFAULT`] unless told otherwise), not against the address they dial: a
//! member is reached at a private address by some clients and a public one by others, and its
//! addresses are only known once it runs.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// The name a member's certificate is issued for, unless the cluster chose another.
pub const TLS_NAME_DEFAULT: &str = "crucial-dso";

/// How long a TLS handshake may take before the connection is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS record that opens a handshake (its content type, 22). A
/// frame of this protocol starts with its length's high byte, which is 0 for any frame
/// accepted: the two cannot be mistaken.
pub(crate) const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Certificates or keys that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TLS {what}: {reason}")]
pub struct TlsError {
    /// What was being read or built (`certificate chain`, `private key`, `CA`, `name`).
    pub what: &'static str,
    /// Why it failed.
    pub reason: String,
}

impl TlsError {
    fn new(what: &'static str, reason: impl ToString) -> Self {
        Self { what, reason: reason.to_string() }
    }
}

/// One process-wide choice of cryptography, named in every configuration.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a server presents in the handshake (and a member, to the members it connects to):
/// its certificate chain and private key.
#[derive(Clone)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(..)")
    }
}

impl TlsIdentity {
    /// From PEM: the certificate chain (the member's certificate first) and its private key
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8]) -> Result<Self, TlsError> {
        let chain = certificates(cert_chain, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(private_key)
            .map_err(|error| TlsError::new("private key", error))?;
        let identity = Self { chain, key: Arc::new(key) };
        // The key must be the certificate's: checked now rather than at the first handshake.
        identity.acceptor(None)?;
        Ok(identity)
    }

    /// What accepts handshakes presenting this identity; with `members`, it also asks
    /// clients for a certificate (optional: only members have one) and checks any given
    /// against the members' CA.
    pub(crate) fn acceptor(&self, members: Option<&TlsTrust>) -> Result<TlsAcceptor, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::new("protocol versions", error))?;
        let builder = match members {
            Some(trust) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    trust.roots.clone(),
                    provider(),
                )
                .allow_unauthenticated()
                .build()
                .map_err(|error| TlsError::new("CA", error))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|error| TlsError::new("certificate chain", error))?;
        Ok(TlsAcceptor { config: Arc::new(config), members_certified: members.is_some() })
    }
}

/// Accepts TLS handshakes for a server.
#[derive(Clone, Debug)]
pub(crate) struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
    /// Whether clients may present a member certificate (checked against the members' CA),
    /// which members must.
    pub(crate) members_certified: bool,
}

impl TlsAcceptor {
    /// Accepts a handshake on `stream`; whether the client presented a certificate the
    /// members' CA signed (a member's).
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<(tokio_rustls::server::TlsStream<TcpStream>, bool)> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let stream = timed(acceptor.accept(stream)).await?;
        // A certificate is only there if the verifier accepted it.
        let certified = stream.get_ref().1.peer_certificates().is_some_and(|chain| !chain.is_empty());
        Ok((stream, certified))
    }
}

/// Whom a client (or a member connecting to another) trusts: the CA certificates that sign the
/// members' certificates, and the name those must be issued for. It travels (to a cloud
/// thread, in its invocation) as the CA's PEM text and the name: no secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "TrustPem", into = "TrustPem")]
pub struct TlsTrust {
    config: Arc<rustls::ClientConfig>,
    roots: Arc<rustls::RootCertStore>,
    name: ServerName<'static>,
    /// What it was built from.
    pem: TrustPem,
}

/// A [`TlsTrust`] as it travels: the CA certificates (PEM) and the name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TrustPem {
    ca_pem: String,
    name: String,
}

impl TryFrom<TrustPem> for TlsTrust {
    type Error = TlsError;
    fn try_from(pem: TrustPem) -> Result<Self, TlsError> {
        TlsTrust::from_pem(pem.ca_pem.as_bytes(), &pem.name)
    }
}

impl From<TlsTrust> for TrustPem {
    fn from(trust: TlsTrust) -> Self {
        trust.pem
    }
}

/// Two trusts are the same if built from the same CA certificates and name.
impl PartialEq for TlsTrust {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TlsTrust {
    /// Trusts the CA certificates in `ca` (PEM) for certificates issued for `name` (a DNS
    /// name, or an IP address).
    pub fn from_pem(ca: &[u8], name: &str) -> Result<Self, TlsError> {
        // The text travels to cloud threads: a key in it (a CA's, say) must not.
        if ca.windows(b"PRIVATE KEY".len()).any(|window| window == b"PRIVATE KEY") {
            return Err(TlsError::new("CA", "the file holds a private key: give the CA's certificates only"));
        }
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates(ca, "CA")? {
            roots.add(certificate).map_err(|error| TlsError::new("CA", error))?;
        }
        let pem = TrustPem {
            ca_pem: String::from_utf8(ca.to_vec()).map_err(|_| TlsError::new("CA", "not PEM text"))?,
            name: name.to_string(),
        };
        let name = ServerName::try_from(name.to_string()).map_err(|error| TlsError::new("name", error))?;
        let roots = Arc::new(roots);
        let config = client_config(&roots)?.with_no_client_auth();
        Ok(Self { config: Arc::new(config), roots, name, pem })
    }

    /// This trust, presenting `identity` to the servers it connects to: a member's, towards
    /// the other members.
    pub(crate) fn presenting(&self, identity: &TlsIdentity) -> Result<TlsTrust, TlsError> {
        let config = client_config(&self.roots)?
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|error| TlsError::new("certificate chain", error))?;
        Ok(TlsTrust { config: Arc::new(config), ..self.clone() })
    }

    /// Shakes hands on `stream`, checking the server's certificate.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        timed(connector.connect(self.name.clone(), stream)).await
    }
}

/// A client configuration trusting `roots`, before its own certificate is chosen.
fn client_config(
    roots: &Arc<rustls::RootCertStore>,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::new("protocol versions", error))?
        .with_root_certificates(roots.clone()))
}

/// A server's TLS: what it presents, and, for a cluster member, whom it trusts as a member.
/// Members present their certificate to each other as clients too; a connection that
/// introduces itself as a member must have presented one the members' CA signed (the token
/// alone, which every client holds, does not make a member).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The certificate and key presented to clients and members.
    pub identity: TlsIdentity,
    /// The trust for connections to and from other members (needed by a cluster member).
    pub members: Option<TlsTrust>,
}

/// Every certificate in `pem`, at least one.
fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::new(what, error))?;
    if certificates.is_empty() {
        return Err(TlsError::new(what, "no PEM certificate found"));
    }
    Ok(certificates)
}

/// `handshake`, or a timeout error after [`HANDSHAKE_TIMEOUT`].
async fn timed<T>(handshake: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no TLS handshake within 10 s"))
    })
}

/// A failed client handshake, explained: rustls names the certificate problem (expired,
/// unknown issuer, not valid for the name); a server that does not speak TLS answers with
/// bytes that are no TLS record.
pub(crate) fn describe_handshake_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    if text.contains("corrupt message") {
        format!(
            "TLS handshake failed: {text} (does the server serve TLS? one without it answers in plain TCP)"
        )
    } else {
        format!("TLS handshake failed: {text}")
    }
}
