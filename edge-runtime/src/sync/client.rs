//! The edge's side of HTTP sync: `POST {hub}/api/batches` with a batch signed by the device's
//! key, the key's public half named in the [`DEVICE_KEY_HEADER`] header and the request itself
//! signed by that key ([`request_auth_headers`]: method, path, `Content-Length`, time and the
//! batch's checksum), so the hub can refuse an unknown or forged sender before it reads a byte
//! of the body. A batch counts as delivered only on `200` with the batch's own checksum echoed
//! back. `GET {hub}/api/runs` takes the shared bearer token, and only that request carries it.
//!
//! A hub that cannot be reached or times out ([`Error::HubConnection`]), answers 5xx, or is busy
//! or timed out the request (408, 429) ([`Error::HubUnreachable`]) is worth retrying later
//! ([`Error::is_hub_unreachable`]); a refused key or token or a rejected batch (401, 403, 400,
//! 413, ...) is [`Error::Refused`], and an answer that does not add up [`Error::Sync`] (retrying
//! won't help).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::SecretKey;
use crate::logbook::{ApplySummary, timestamp};
use crate::sync::Token;
use crate::sync::batch::Batch;

pub const BATCHES_PATH: &str = "/api/batches";
pub const RUNS_PATH: &str = "/api/runs";
/// The request header naming the sender's public key (64 hex digits).
pub const DEVICE_KEY_HEADER: &str = "X-Fieldsynth-Device-Key";
/// The request header carrying the ed25519 signature (128 hex digits) of
/// [`request_signed_text`] under the sender's key.
pub const REQUEST_SIGNATURE_HEADER: &str = "X-Fieldsynth-Request-Signature";
/// The request header carrying the time the request was signed, RFC 3339 UTC.
pub const REQUEST_TIME_HEADER: &str = "X-Fieldsynth-Request-Time";
/// The request header carrying the checksum of the batch in the body (its `payload_sha256`).
pub const BATCH_SHA256_HEADER: &str = "X-Fieldsynth-Batch-Sha256";

/// What a request signature covers, one item a line: a fixed tag, the method, the path, the
/// body's length, the signing time and the batch's checksum. The hub checks it before it reads
/// the body, then that the body has that length and carries that batch.
pub fn request_signed_text(
    method: &str,
    path: &str,
    content_length: u64,
    time: &str,
    batch_sha256: &str,
) -> Vec<u8> {
    format!("fieldsynth-request-v1\n{method}\n{path}\n{content_length}\n{time}\n{batch_sha256}")
        .into_bytes()
}

/// The headers that authenticate a request as `key`'s device, signed at `time` (RFC 3339 UTC):
/// the key, the time, the batch checksum and the signature.
pub fn request_auth_headers(
    key: &SecretKey,
    method: &str,
    path: &str,
    content_length: u64,
    time: &str,
    batch_sha256: &str,
) -> Vec<(&'static str, String)> {
    let signature =
        key.sign(&request_signed_text(method, path, content_length, time, batch_sha256));
    vec![
        (DEVICE_KEY_HEADER, key.public().to_hex()),
        (REQUEST_TIME_HEADER, time.to_owned()),
        (BATCH_SHA256_HEADER, batch_sha256.to_owned()),
        (REQUEST_SIGNATURE_HEADER, signature),
    ]
}

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
    /// `base_url` is the hub's root, such as `http://192.168.1.10:8750`; `key` signs batches
    /// and requests; `token`, if any, is sent to the read endpoint only.
    pub fn new(base_url: &str, key: SecretKey, token: Option<Token>) -> Result<HubClient> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !base_url.starts_with("http://") {
            return Err(Error::Invalid(format!(
                "hub address `{base_url}`: expected a plain-HTTP hub address such as http://HOST:PORT"
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
        if body.len() > super::hub::MAX_BATCH_BYTES {
            return Err(Error::Invalid(format!(
                "{url}: the batch is {} bytes, over the {} bytes a hub takes; it was not sent",
                body.len(),
                super::hub::MAX_BATCH_BYTES
            )));
        }
        let mut request = self.agent.post(&url).header("Content-Type", "application/json");
        for (name, value) in request_auth_headers(
            &self.key,
            "POST",
            BATCHES_PATH,
            body.len() as u64,
            &timestamp::now(),
            &batch.payload_sha256,
        ) {
            request = request.header(name, value);
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
            408 | 429 | 500.. => Err(Error::HubUnreachable {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_address_that_is_not_plain_http_is_refused_without_naming_a_flag() {
        let key = SecretKey::generate().unwrap();
        let err = HubClient::new("https://hub:8750", key, None).unwrap_err().to_string();
        assert!(err.contains("hub address `https://hub:8750`"), "{err}");
        assert!(!err.contains("--"), "{err}");
    }

    #[test]
    fn a_request_signature_covers_method_path_length_time_and_batch() {
        let key = SecretKey::generate().unwrap();
        let time = "2025-03-07T14:05:09.123Z";
        let headers = request_auth_headers(&key, "POST", BATCHES_PATH, 10, time, "abc");
        let signature = &headers[3].1;
        let public = key.public();
        assert!(
            public.verifies(&request_signed_text("POST", BATCHES_PATH, 10, time, "abc"), signature)
        );
        for text in [
            request_signed_text("GET", BATCHES_PATH, 10, time, "abc"),
            request_signed_text("POST", RUNS_PATH, 10, time, "abc"),
            request_signed_text("POST", BATCHES_PATH, 11, time, "abc"),
            request_signed_text("POST", BATCHES_PATH, 10, "2025-03-07T14:05:09.124Z", "abc"),
            request_signed_text("POST", BATCHES_PATH, 10, time, "abd"),
        ] {
            assert!(!public.verifies(&text, signature));
        }
    }
}
