//! Codes and tokens the sandbox's OAuth has issued: data kept with the
//! world (and saved with it); the handlers that issue them are in `oauth`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Codes and tokens issued so far (persisted with the world).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthState {
    pub codes: BTreeMap<String, AuthCode>,
    pub access_tokens: BTreeMap<String, Grant>,
    pub refresh_tokens: BTreeMap<String, Grant>,
}

/// An authorization code waiting to be exchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthCode {
    pub client_id: String,
    pub account_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub expires_at: Timestamp,
}

/// What an access or refresh token stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub client_id: String,
    pub account_id: String,
    pub scopes: Vec<String>,
    pub expires_at: Timestamp,
}

/// The caller behind a valid bearer token.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub account_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl OAuthState {
    /// The caller of a live access token.
    pub(crate) fn caller(&self, token: &str, now: Timestamp) -> Option<Caller> {
        let g = self.access_tokens.get(token)?;
        (now < g.expires_at).then(|| Caller {
            account_id: g.account_id.clone(),
            client_id: g.client_id.clone(),
            scopes: g.scopes.clone(),
        })
    }

    pub(crate) fn prune(&mut self, now: Timestamp) {
        self.codes.retain(|_, c| c.expires_at > now);
        self.access_tokens.retain(|_, g| g.expires_at > now);
        self.refresh_tokens.retain(|_, g| g.expires_at > now);
    }
}
