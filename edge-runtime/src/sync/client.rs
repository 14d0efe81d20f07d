//! The edge's side of HTTP sync: `POST {hub}/api/batches` with a batch signed by the device's
//! key, the key's public half named in the [`DEVICE_KEY_HEADER`] header so the hub can refuse an
//! unknown sender before it reads the body. A batch counts as delivered only on `200` with the
//! batch's own checksum echoed back. `GET {hub}/api/runs` takes the shared bearer token.
//!
//! A hub that cannot be reached or times out ([`Error::HubConnection`]) or answers 5xx
//! ([`Error::HubUnreachable`]) is worth retrying later ([`Error::is_hub_unreachable`]); a refused
//! key or token or a rejected batch (4xx) is [`Error::Refused`], and an answer that does not add
//! up [`Error::Sync`] (retrying won't help).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::SecretKey;
use crate::logbook::ApplySummary;
use crate::sync::Token;
use crate::sync::batch::Batch;

pub const BATCHES_PATH: &str = "/api/batches";
pub const RUNS_PATH: &str = "/api/runs";
/// The request header naming the sender's public key (64 hex digits).
pub const DEVICE_KEY_HEADER: &str = "X-Fieldsynth-Device-Key";

/// The largest answer read from a hub (a full listing of a busy hub's runs fits).
const MAX_ANSWER_BYTES: u64 = 512 * 1024 * 1024;

/// The hub's answer to an accepted batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub payload_sha256: String,
    pub summary: ApplySummary,
}

#[derive(Debug)]
pub struct HubClient {
    agent: ureq::Agent,
    base_url: String,
    key: SecretKey,
    token: Option<Token>,
}

impl HubClient {
    /// `base_url` is the hub's root, such as `http://192.168.1.10:8750`; `key` signs batches;
    /// `token`, if any, is sent for the read endpoint.
    pub fn new(base_url: &str, key: SecretKey, token: Option<Token>) -> Result<HubClient> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !base_url.starts_with("http://") {
            return Err(Error::Invalid(format!(
                "invalid --to `{base_url}`: expected a plain-HTTP hub address such as http://HOST:PORT"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(HubClient { agent, base_url, key, token })
    }

    /// The key that signs this client's batches.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends one batch; `Ok` only when the hub applied it and echoed its checksum.
    pub fn push(&self, batch: &Batch) -> Result<Acknowledgement> {
        let url = format!("{}{BATCHES_PATH}", self.base_url);
        let body = batch.encode()?;
        let mut request = self
            .agent
            .post(&url)
            .header(DEVICE_KEY_HEADER, batch.device_key.to_hex())
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", token.bearer_header());
        }
        let response = request.send(&body[..]);
        let text = self.read_answer(response)?;
        let acknowledgement: Acknowledgement = serde_json::from_str(&text).map_err(|err| {
            Error::json(
                format!("sync: {url}: the hub's answer `{text}` is not an acknowledgement"),
                err,
            )
        })?;
        if acknowledgement.payload_sha256 != batch.payload_sha256 {
            return Err(Error::Sync(format!(
                "{url}: the hub acknowledged batch {} but {} was sent; rows stay unsynced",
                acknowledgement.payload_sha256, batch.payload_sha256
            )));
        }
        Ok(acknowledgement)
    }

    /// The hub's listing of devices and runs (`GET /api/runs`), as JSON text.
    pub fn list_runs(&self) -> Result<String> {
        let url = format!("{}{RUNS_PATH}", self.base_url);
        let token = self.token.as_ref().ok_or_else(|| {
            Error::Invalid(format!("{url}: listing the hub's runs needs the hub's read token"))
        })?;
        let response = self.agent.get(&url).header("Authorization", token.bearer_header()).call();
        self.read_answer(response)
    }

    /// The body of a 200 answer, or the error that the status (or its absence) means.
    fn read_answer(
        &self,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String> {
        let broken = |context: &'static str| {
            move |source| Error::HubConnection {
                url: self.base_url.clone(),
                context,
                source: Box::new(source),
            }
        };
        let mut response = response.map_err(broken("sending the request"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(broken("reading the answer"))?;
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|answer| answer.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().chars().take(2000).collect());
        match status {
            200 => Ok(text),
            401 | 403 => Err(Error::Refused {
                status,
                message: format!(
                    "{}: the hub refused this device's credentials: {reason}",
                    self.base_url
                ),
            }),
            500.. => Err(Error::HubUnreachable {
                url: self.base_url.clone(),
                message: format!("the hub answered {status}: {reason}"),
            }),
            _ => Err(Error::Refused {
                status,
                message: format!("{}: the hub refused the request: {reason}", self.base_url),
            }),
        }
    }
}
