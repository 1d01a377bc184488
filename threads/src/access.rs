//! What a client presents to the DSO: the executor's, its threads' and the Lambda handler's.

use crucial_dso::client::ClientConfig;
use crucial_dso::core::auth::Token;
use crucial_dso::tls::TlsTrust;

/// What a client presents to the DSO: its token, if it requires one, and whom to trust over
/// TLS, if it serves TLS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DsoAccess {
    /// The cluster's token.
    pub token: Option<Token>,
    /// The cluster's CA and certificate name.
    pub tls: Option<TlsTrust>,
    /// Send the token over plain TCP to non-loopback members ([`ClientConfig::insecure`]).
    pub insecure: bool,
}

impl DsoAccess {
    /// `config` presenting this access.
    pub(crate) fn client_config(&self, config: ClientConfig) -> ClientConfig {
        ClientConfig { token: self.token.clone(), tls: self.tls.clone(), insecure: self.insecure, ..config }
    }
}
