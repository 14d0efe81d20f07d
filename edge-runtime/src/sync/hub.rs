//! The hub's HTTP server (`synth-edge hub serve`): a workstation's logbook that devices sync into.
//!
//! - `POST /api/batches`: a [`Batch`] as the body; applied in one transaction
//!   and answered with its checksum ([`Acknowledgement`]), or `400` with nothing written.
//! - `GET /api/runs`: every device and run with its metrics, as a [`Listing`].
//!
//! Both need `Authorization: Bearer <token>`; without the right one the answer is `401` and the
//! body is not read. Requests are served one at a time on the calling thread, which checks a stop
//! flag between requests, so a signal handler or a test can end it cleanly.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::error::{self, Error, Result};
use crate::logbook::{DeviceRecord, Logbook, RunRecord};
use crate::sync::Token;
use crate::sync::batch::Batch;
use crate::sync::client::{Acknowledgement, BATCHES_PATH, RUNS_PATH};

/// The largest batch body accepted.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// How often the serving loop looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The answer of `GET /api/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub devices: Vec<DeviceRecord>,
    pub runs: Vec<RunRecord>,
}

pub struct Hub {
    server: Server,
    logbook: Logbook,
    token: Token,
    address: SocketAddr,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("address", &self.address)
            .field("logbook", &self.logbook)
            .finish()
    }
}

struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(status: u16, value: &impl Serialize) -> Answer {
        match serde_json::to_string(value) {
            Ok(body) => Answer { status, body },
            Err(err) => Answer::error(500, &format!("cannot encode the answer: {err}")),
        }
    }

    fn error(status: u16, message: &str) -> Answer {
        Answer { status, body: serde_json::json!({ "error": message }).to_string() }
    }
}

impl Hub {
    /// Listens on `address` (`127.0.0.1:0` picks a free port; see [`Hub::address`]).
    pub fn bind(logbook: Logbook, address: &str, token: Token) -> Result<Hub> {
        let server = Server::http(address).map_err(|source| Error::HubServer {
            address: address.to_owned(),
            context: "cannot listen",
            source,
        })?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Sync(format!("{address} is not an IP address")))?;
        Ok(Hub { server, logbook, token, address })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves requests until `stop` is set; the request in hand is finished first.
    pub fn serve_until(&self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::SeqCst) {
            let request =
                self.server.recv_timeout(STOP_POLL).map_err(|source| Error::HubServer {
                    address: self.address.to_string(),
                    context: "cannot take a request",
                    source: source.into(),
                })?;
            if let Some(request) = request {
                self.handle(request);
            }
        }
        Ok(())
    }

    fn handle(&self, mut request: Request) {
        let peer =
            request.remote_addr().map_or_else(|| "unknown peer".to_owned(), ToString::to_string);
        let method = request.method().clone();
        let path = request.url().split('?').next().unwrap_or_default().to_owned();
        let answer = if !self.authorised(&request) {
            Answer::error(401, "missing or wrong bearer token")
        } else {
            match (&method, path.as_str()) {
                (Method::Post, BATCHES_PATH) => self.receive_batch(&mut request, &peer),
                (Method::Get, RUNS_PATH) => self.list_runs(),
                (_, BATCHES_PATH | RUNS_PATH) => {
                    Answer::error(405, &format!("{method} is not allowed on {path}"))
                }
                _ => Answer::error(
                    404,
                    &format!(
                        "no such endpoint {path}; the hub serves POST {BATCHES_PATH} and GET {RUNS_PATH}"
                    ),
                ),
            }
        };
        eprintln!(
            "{peer} {method} {path}: {} {}",
            answer.status,
            answer.body.chars().take(200).collect::<String>()
        );
        let mut response = Response::from_string(answer.body).with_status_code(answer.status);
        if let Ok(header) = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
            response.add_header(header);
        }
        if answer.status == 401
            && let Ok(header) = Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..])
        {
            response.add_header(header);
        }
        if let Err(err) = request.respond(response) {
            eprintln!("{peer}: could not send the answer: {err}");
        }
    }

    fn authorised(&self, request: &Request) -> bool {
        request
            .headers()
            .iter()
            .find(|header| header.field.equiv("Authorization"))
            .and_then(|header| header.value.as_str().strip_prefix("Bearer "))
            .is_some_and(|presented| self.token.matches(presented.trim()))
    }

    fn receive_batch(&self, request: &mut Request, peer: &str) -> Answer {
        if request.body_length().is_some_and(|length| length > MAX_BATCH_BYTES) {
            return Answer::error(
                413,
                &format!(
                    "batch larger than {MAX_BATCH_BYTES} bytes; sync with a smaller --batch-runs"
                ),
            );
        }
        let mut body = Vec::new();
        if let Err(err) =
            request.as_reader().take(MAX_BATCH_BYTES as u64 + 1).read_to_end(&mut body)
        {
            return Answer::error(400, &format!("cannot read the batch: {err}"));
        }
        if body.len() > MAX_BATCH_BYTES {
            return Answer::error(
                413,
                &format!(
                    "batch larger than {MAX_BATCH_BYTES} bytes; sync with a smaller --batch-runs"
                ),
            );
        }
        let batch = match Batch::decode(&body, &format!("batch from {peer}")) {
            Ok(batch) => batch,
            Err(err) => return Answer::error(400, &error::chain(&err)),
        };
        match self.logbook.apply_rows(&batch.rows) {
            Ok(summary) => Answer::json(
                200,
                &Acknowledgement { payload_sha256: batch.payload_sha256, summary },
            ),
            Err(err) => Answer::error(500, &error::chain(&err)),
        }
    }

    fn list_runs(&self) -> Answer {
        match self
            .logbook
            .devices()
            .and_then(|devices| Ok(Listing { devices, runs: self.logbook.runs()? }))
        {
            Ok(listing) => Answer::json(200, &listing),
            Err(err) => Answer::error(500, &error::chain(&err)),
        }
    }
}
