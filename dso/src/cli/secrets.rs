//! The server's secrets: the token (from a file or the environment, never the command line)
//! and the TLS private key, each from a file other users cannot read or change; and the TLS
//! settings built from them.

use std::path::Path;

use crucial_dso::core::auth::Token;
use crucial_dso::server::ServerTls;
use crucial_dso::tls::{TlsIdentity, TlsTrust};

use super::Args;

/// The environment variable that can hold the token.
pub(crate) const TOKEN_VARIABLE: &str = "DSO_TOKEN";

fn invalid(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)
}

/// The token from `--token-file` or the environment (not both), if any.
pub(crate) fn token(file: Option<&Path>, variable: Option<String>) -> std::io::Result<Option<Token>> {
    let secret = match (file, variable) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!("the token comes from --token-file or {TOKEN_VARIABLE}, not both")))
        }
        (Some(path), None) => {
            let bytes = read_secret_file(path, "--token-file")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid(format!("--token-file {}: not UTF-8 text", path.display())))?;
            strip_final_newline(text)
        }
        (None, Some(secret)) => secret,
        (None, None) => return Ok(None),
    };
    Token::new(secret).map(Some).map_err(|error| invalid(error.to_string()))
}

/// The TLS the flags and the settings file ask for, if any.
pub(crate) fn tls(args: &Args) -> std::io::Result<Option<ServerTls>> {
    // Checked here, not only by clap, which does not see the settings file.
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) if args.tls_ca.is_none() => return Ok(None),
        (None, None) => return Err(invalid("--tls-ca (tls-ca) needs --tls-cert and --tls-key".into())),
        _ => return Err(invalid("--tls-cert and --tls-key (tls-cert, tls-key) go together".into())),
    };
    let in_file = |flag: &str, path: &Path, error: crucial_dso::tls::TlsError| {
        invalid(format!("{flag} {}: {error}", path.display()))
    };
    let chain =
        std::fs::read(cert).map_err(|error| invalid(format!("--tls-cert {}: {error}", cert.display())))?;
    let private_key = read_secret_file(key, "--tls-key")?;
    let identity =
        TlsIdentity::from_pem(&chain, &private_key).map_err(|error| in_file("--tls-key", key, error))?;
    let members = match &args.tls_ca {
        Some(ca) => {
            let pem =
                std::fs::read(ca).map_err(|error| invalid(format!("--tls-ca {}: {error}", ca.display())))?;
            Some(TlsTrust::from_pem(&pem, &args.tls_name).map_err(|error| in_file("--tls-ca", ca, error))?)
        }
        None => None,
    };
    Ok(Some(ServerTls { identity, members }))
}

/// `text` without one final newline (`\n` or `\r\n`).
fn strip_final_newline(text: String) -> String {
    match text.strip_suffix('\n') {
        Some(line) => line.strip_suffix('\r').unwrap_or(line).to_string(),
        None => text,
    }
}

/// The bytes of `path` (given as `flag`), which other users must not be able to read or
/// change.
fn read_secret_file(path: &Path, flag: &str) -> std::io::Result<Vec<u8>> {
    let context = |error: std::io::Error| {
        std::io::Error::new(error.kind(), format!("{flag} {}: {error}", path.display()))
    };
    // One open: the file checked is the file read.
    let mut file = std::fs::File::open(path).map_err(context)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = file.metadata().map_err(context)?;
        let denied = |why: String| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{flag} {}: {why}", path.display()),
            )
        };
        if metadata.mode() & 0o077 != 0 {
            return Err(denied(format!(
                "readable or writable by other users (mode {:03o}); `chmod 600 {}` first",
                metadata.mode() & 0o777,
                path.display()
            )));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me && metadata.uid() != 0 {
            return Err(denied(format!(
                "owned by user {}, not by this server's user ({me}) or root: another user could change it",
                metadata.uid()
            )));
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(context)?;
    Ok(bytes)
}
