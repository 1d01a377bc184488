//! The shared token a cluster's members and clients present in their handshake
//! ([`crate::protocol::Request::Hello`], [`crate::protocol::Request::PeerHello`]): a server
//! that has one serves only connections that present it.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::ConfigError;

/// The fewest characters a token may have (`openssl rand -hex 32` gives 64).
pub const TOKEN_CHARS_MIN: usize = 16;

/// A secret shared by a cluster's members and its clients. It never shows: `Debug` prints
/// `Token(<redacted>)`, so it stays out of logs and error messages; comparing two takes the
/// same time wherever they differ.
///
/// Members and clients share it: a client that holds it could also introduce itself as a
/// member. Hand it only to code you trust as much as the cluster itself.
#[derive(Clone, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// A token from its text, which must have at least [`TOKEN_CHARS_MIN`] characters and no
    /// surrounding whitespace.
    pub fn new(secret: impl Into<String>) -> Result<Token, ConfigError> {
        let token = Token(secret.into());
        ConfigError::check(
            token.0.chars().count() >= TOKEN_CHARS_MIN,
            "token",
            &token,
            &format!("must have at least {TOKEN_CHARS_MIN} characters (for example `openssl rand -hex 32`)"),
        )?;
        ConfigError::check(
            token.0.trim() == token.0,
            "token",
            &token,
            "must not start or end with whitespace",
        )?;
        Ok(token)
    }

    /// The secret itself, to hand on (to a cloud thread's environment, say); never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a connection that `presented` this (or nothing) is let in.
    pub fn admits(&self, presented: Option<&Token>) -> Result<(), AuthError> {
        match presented {
            None => Err(AuthError::Missing),
            Some(presented) if *self == *presented => Ok(()),
            Some(_) => Err(AuthError::Wrong),
        }
    }
}

impl PartialEq for Token {
    /// In time that depends only on the longer length, never on where or whether they differ
    /// (the shorter is compared as if padded with zeros, and the lengths are compared too).
    fn eq(&self, other: &Token) -> bool {
        let (mine, theirs) = (self.0.as_bytes(), other.0.as_bytes());
        let mut same = (mine.len() as u64).ct_eq(&(theirs.len() as u64));
        for index in 0..mine.len().max(theirs.len()) {
            let byte = |bytes: &[u8]| bytes.get(index).copied().unwrap_or(0);
            same &= byte(mine).ct_eq(&byte(theirs));
        }
        same.into()
    }
}

impl std::hash::Hash for Token {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The server has a token and the connection presented none.
    #[error("authentication failed: this server requires a token and none was given")]
    Missing,
    /// The connection presented another token than the server's.
    #[error("authentication failed: wrong token")]
    Wrong,
    /// A connection introduced itself as a member without the member certificate that a
    /// server serving TLS to a cluster requires of members.
    #[error("authentication failed: a member must present a certificate signed by the cluster's CA")]
    NotAMember,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_admits_itself_only_and_never_shows() {
        let token = Token::new("0123456789abcdef-secret").unwrap();
        assert_eq!(token.admits(Some(&token.clone())), Ok(()));
        assert_eq!(token.admits(None), Err(AuthError::Missing));
        let others = ["0123456789abcdef-secreT", "0123456789abcdef-secret!", "0123456789abcdef-secre"];
        for other in others.map(String::from).into_iter().chain([format!("{}\0", token.expose())]) {
            let other = Token::new(other).unwrap();
            assert_eq!(token.admits(Some(&other)), Err(AuthError::Wrong), "{:?}", other.expose());
        }
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }

    #[test]
    fn short_or_padded_tokens_are_refused_without_showing_them() {
        for bad in ["short", "", " 0123456789abcdef", "0123456789abcdef\n"] {
            let error = Token::new(bad).unwrap_err();
            assert_eq!(error.field, "token");
            assert!(bad.trim().is_empty() || !error.to_string().contains(bad.trim()), "{error}");
        }
    }
}
