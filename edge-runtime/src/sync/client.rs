//! The edge's side of HTTP sync: `POST {hub}/api/batches` with the bearer token. A batch counts
//! as delivered only on `200` with the batch's own checksum echoed back.
//!
//! A hub that cannot be reached or times out ([`Error::HubConnection`]) or answers 5xx
//! ([`Error::HubUnreachable`]) is worth retrying later ([`Error::is_hub_unreachable`]); a refused
//! token or a rejected batch is [`Error::Sync`] (retrying won't help).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::logbook::ApplySummary;
use crate::sync::Token;
use crate::sync::batch::Batch;

pub const BATCHES_PATH: &str = "/api/batches";
pub const RUNS_PATH: &str = "/api/runs";

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
    token: Token,
}

impl HubClient {
    /// `base_url` is the hub's root, such as `http://192.168.1.10:8750`.
    pub fn new(base_url: &str, token: Token) -> Result<HubClient> {
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
        Ok(HubClient { agent, base_url, token })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends one batch; `Ok` only when the hub applied it and echoed its checksum.
    pub fn push(&self, batch: &Batch) -> Result<Acknowledgement> {
        let url = format!("{}{BATCHES_PATH}", self.base_url);
        let body = batch.encode()?;
        let response = self
            .agent
            .post(&url)
            .header("Authorization", self.token.bearer_header())
            .header("Content-Type", "application/json")
            .send(&body[..]);
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
        let response =
            self.agent.get(&url).header("Authorization", self.token.bearer_header()).call();
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
        match status {
            200 => Ok(text),
            401 => Err(Error::Sync(format!(
                "{}: the hub refused the token (401); check --token-file against the hub's",
                self.base_url
            ))),
            500.. => Err(Error::HubUnreachable {
                url: self.base_url.clone(),
                message: format!("the hub answered {status}: {}", text.trim()),
            }),
            _ => Err(Error::Sync(format!(
                "{}: the hub answered {status}: {}",
                self.base_url,
                text.trim()
            ))),
        }
    }
}
