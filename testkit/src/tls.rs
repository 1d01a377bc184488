//! Certificates for TLS tests: a throwaway CA, and certificates it signs (valid, expired, or
//! for another name), as PEM text.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use time::{Duration, OffsetDateTime};

/// A CA made for one test.
pub struct TestCa {
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, as PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub certificate_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// How long an issued certificate is valid, around now.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From yesterday to a year from now.
    Current,
    /// Expired yesterday.
    Expired,
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new(common_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names to check");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("a key");
        let certificate = params.self_signed(&key).expect("a self-signed CA certificate");
        Self { certificate_pem: certificate.pem(), issuer: Issuer::new(params, key) }
    }

    /// The CA's certificate: what clients trust.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A certificate for `name` (a DNS name or an IP address), signed by this CA.
    pub fn issue(&self, name: &str, validity: Validity) -> Issued {
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("a valid name");
        params.distinguished_name.push(DnType::CommonName, name);
        let (now, day) = (OffsetDateTime::now_utc(), Duration::days(1));
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (now - day, now + day * 365),
            Validity::Expired => (now - day * 30, now - day),
        };
        let key = KeyPair::generate().expect("a key");
        let certificate = params.signed_by(&key, &self.issuer).expect("a signed certificate");
        Issued { certificate_pem: certificate.pem(), key_pem: key.serialize_pem() }
    }
}

/// What [`TestCa::write_server_files`] wrote: the certificate issued, and the `dso-server`
/// flags naming the files.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    /// The server's certificate and key.
    pub issued: Issued,
    /// `--tls-cert`, `--tls-key` and `--tls-ca`, each with its file.
    pub args: Vec<String>,
}

impl TestCa {
    /// Writes into `dir` this CA's certificate (`ca.crt`) and a current certificate for
    /// `name` with its key (`tls.crt`, `tls.key`), all readable by this user only.
    pub fn write_server_files(&self, dir: &Path, name: &str) -> std::io::Result<ServerFiles> {
        let issued = self.issue(name, Validity::Current);
        let files = [
            ("--tls-ca", "ca.crt", self.certificate_pem()),
            ("--tls-cert", "tls.crt", issued.certificate_pem.as_str()),
            ("--tls-key", "tls.key", issued.key_pem.as_str()),
        ];
        let mut args = Vec::new();
        for (flag, file, pem) in files {
            write_private(&dir.join(file), pem)?;
            args.extend([flag.to_string(), dir.join(file).display().to_string()]);
        }
        Ok(ServerFiles { issued, args })
    }
}

/// Writes `text` to `path`, readable and writable by this user only from the start (servers
/// refuse secrets that others can read).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
        .map_err(|error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}
