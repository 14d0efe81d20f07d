//! The hub's HTTP server (`synth-edge hub serve`): a workstation's logbook that devices sync into.
//!
//! - `POST /api/batches`: a [`Batch`] signed by an enrolled device, its public key named in the
//!   [`DEVICE_KEY_HEADER`] header and the request signed by it ([`REQUEST_SIGNATURE_HEADER`],
//!   see [`request_signed_text`]); applied in one transaction under that device only and
//!   answered with its checksum ([`Acknowledgement`]). An unknown or missing key, or a missing,
//!   wrong or stale request signature ([`REQUEST_FRESHNESS`]) is `401` and a revoked key `403`,
//!   all answered before any of the body is read (a public key alone, which every batch file
//!   and the run listing show, gets nobody's body read); a body over
//!   [`MAX_BATCH_BYTES`] (by its `Content-Length`, checked before anything is allocated) is `413`,
//!   one without a length `411`; a bad signature `401`; rows claiming another device `403`; an
//!   invalid row `400` naming the field. Nothing is written unless the answer is `200`.
//! - `GET /api/runs`: every device and run with its metrics, as a [`Listing`]; it needs
//!   `Authorization: Bearer <token>`.
//!
//! A small HTTP/1.1 server on `std::net`, written here rather than with `tiny_http`, whose reader
//! allocates a request's announced remaining length when it drops an unread body (a 1 TB
//! `Content-Length` aborted the process) and whose request bodies are read by the one thread
//! that takes requests, so one client that stalled mid-body blocked every device. Here each
//! connection carries one request (`Connection: close`); a pool of worker threads, each with
//! its own connection to the logbook (SQLite serialises the writes; the logbook's busy timeout
//! makes one wait for another), serves them; every read has an idle timeout and every request a
//! deadline ([`HubOptions`]), after which the client gets `408` and is cut off. The calling
//! thread accepts connections and checks a stop flag between them, so a signal handler or a
//! test can end it cleanly; requests in hand are finished first.
//!
//! Slow and silent clients: one IP address may have at most [`HubOptions::max_per_peer`]
//! connections served or queued (more get `429` at once), and a connection must send its whole
//! head within [`HubOptions::head_timeout`] of being accepted (queue time included; `408`, no
//! linger), so one address holds at most that many workers for that long and a good sync from
//! another address is served promptly. Not bounded: an attack from many addresses can still fill
//! the workers and the queue (`503` for everyone while it lasts); put the hub behind a firewall
//! or a TLS proxy that limits connections when it faces untrusted networks. The defaults are the
//! `DEFAULT_*` constants.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::keys::PublicKey;
use crate::logbook::{DeviceRecord, EnrolledDevice, Logbook, RunRecord};
use crate::sync::Token;
use crate::sync::batch::Batch;
use crate::sync::client::{
    Acknowledgement, BATCH_SHA256_HEADER, BATCHES_PATH, DEVICE_KEY_HEADER,
    REQUEST_SIGNATURE_HEADER, REQUEST_TIME_HEADER, RUNS_PATH, request_signed_text,
};
use crate::sync::enrolled_sender;

/// The largest batch body accepted.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// How far a request's signing time ([`REQUEST_TIME_HEADER`]) may be from the hub's clock,
/// either way. Wide, because field devices' clocks drift (a device off the network for weeks,
/// a clock without a battery); narrow enough that a captured request cannot be replayed for
/// long. A replay within the window changes nothing: a batch applied twice is applied once.
pub const REQUEST_FRESHNESS: Duration = Duration::from_secs(3600);

/// The longest request line and headers together.
const MAX_HEAD_BYTES: u64 = 16 * 1024;

/// The most header lines in a request.
const MAX_HEADERS: usize = 64;

/// How often the accepting loop looks at its stop flag while no client connects.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How soon the accepting loop looks again for a connection within [`STOP_POLL`] of the last
/// one: under a flood of reconnecting clients, sleeping the whole poll lets the kernel's accept
/// backlog overflow, and a good client's connection attempt then waits a second to be retried.
const BUSY_POLL: Duration = Duration::from_millis(1);

/// After answering, how long (and how many bytes) a connection's unread input is drained and
/// discarded, so that closing it does not reset the connection before the client has read the
/// answer. Nothing drained is kept.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// How long the accepting thread tries to write a `503` (or `429`) to a connection it has no
/// worker (or no room for its address) for.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// The defaults of [`HubOptions`], in one place. A real client sends its request's head at once,
/// so [`DEFAULT_HEAD_TIMEOUT`] is short: it bounds how long a client that has not said who it is
/// holds a worker. A device syncs one request at a time, so [`DEFAULT_MAX_PER_PEER`] leaves room
/// for several devices behind one NAT address while keeping one address from taking every
/// worker.
pub const DEFAULT_WORKERS: usize = 16;
pub const DEFAULT_QUEUE_PER_WORKER: usize = 4;
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_MAX_PER_PEER: usize = 8;

/// The answer of `GET /api/runs`: each run names its logbook device (`device_id`), and
/// `enrolled` maps enrolled names and keys to those devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub devices: Vec<DeviceRecord>,
    #[serde(default)]
    pub enrolled: Vec<EnrolledDevice>,
    pub runs: Vec<RunRecord>,
}

/// How the hub serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubOptions {
    /// Requests served at once; more wait in a queue of [`DEFAULT_QUEUE_PER_WORKER`] per
    /// worker, and beyond that are answered `503`.
    pub workers: usize,
    /// The most connections from one IP address being served or queued at once; one more is
    /// answered `429` at once (no linger) and closed.
    pub max_per_peer: usize,
    /// The longest a client may take, counted from when its connection was accepted (time in
    /// the queue included), to send a request's line and headers; until they are read nobody is
    /// authenticated, so this bounds what an unknown client can hold a worker for.
    pub head_timeout: Duration,
    /// The longest a client may take to send one request, head and body; it is cut off with
    /// `408` after that.
    pub request_timeout: Duration,
    /// The longest a client may send nothing while a request is being read.
    pub idle_timeout: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            workers: DEFAULT_WORKERS,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

pub struct Hub {
    listener: TcpListener,
    /// One logbook connection per worker.
    logbooks: Vec<Mutex<Logbook>>,
    token: Token,
    address: SocketAddr,
    options: HubOptions,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("address", &self.address)
            .field("options", &self.options)
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

    /// The answer for an error met while taking a batch: its own status for a refusal, `400`
    /// for rows that do not parse or break a constraint, `503` while the logbook is locked by
    /// another process past its busy timeout, `500` for the hub's own faults.
    fn from_error(err: &Error) -> Answer {
        let status = match err {
            Error::Refused { status, .. } => *status,
            Error::BatchUnreadable { .. } | Error::Sync(_) => 400,
            Error::LogbookSql { source, .. } => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => 400,
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    503
                }
                _ => 500,
            },
            _ => 500,
        };
        Answer::error(status, &error::chain(err))
    }
}

/// A request's line and headers (names lowercased).
struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request's head could not be taken.
enum HeadError {
    /// The client closed the connection before sending a request.
    Closed,
    /// A status and the message to answer it with.
    Answer(u16, String),
}

/// Reads from a connection, giving up once `deadline` has passed or the client sends nothing
/// for `idle`; either is `io::ErrorKind::TimedOut`.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    idle: Duration,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the request took too long"));
        }
        self.stream.set_read_timeout(Some(left.min(self.idle)))?;
        match self.stream.read(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "the client sent nothing for too long"))
            }
            outcome => outcome,
        }
    }
}

/// A connection taken by the accepting thread, waiting for or held by a worker: when it was
/// accepted (the head's deadline counts from then) and its place in its address's count.
struct Accepted<'p> {
    stream: TcpStream,
    at: Instant,
    _slot: PeerSlot<'p>,
}

/// One of the connections an IP address has open at the hub; dropping it frees the place.
struct PeerSlot<'p> {
    peers: &'p Mutex<HashMap<IpAddr, usize>>,
    ip: IpAddr,
}

impl<'p> PeerSlot<'p> {
    /// A place for one more connection from `ip`, unless it has `max` already.
    fn take(peers: &'p Mutex<HashMap<IpAddr, usize>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut counts = lock(peers);
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PeerSlot { peers, ip })
    }
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        let mut counts = lock(self.peers);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Answers `status` from the accepting thread: a short write (given up after
/// [`BUSY_WRITE_TIMEOUT`]) and no linger, so a flood cannot stall it.
fn refuse_at_once(stream: &TcpStream, status: u16, message: &str) {
    let _ = stream.set_write_timeout(Some(BUSY_WRITE_TIMEOUT));
    respond(stream, &Answer::error(status, message), false);
}

impl Hub {
    /// Listens on `address` (`127.0.0.1:0` picks a free port; see [`Hub::address`]) with the
    /// default [`HubOptions`]; `token` guards the read endpoint.
    pub fn bind(logbook: Logbook, address: &str, token: Token) -> Result<Hub> {
        Hub::bind_with(logbook, address, token, HubOptions::default())
    }

    /// As [`Hub::bind`], with `options`; opens one more connection to the logbook per worker.
    pub fn bind_with(
        logbook: Logbook,
        address: &str,
        token: Token,
        options: HubOptions,
    ) -> Result<Hub> {
        if options.workers == 0
            || options.max_per_peer == 0
            || options.head_timeout.is_zero()
            || options.request_timeout.is_zero()
            || options.idle_timeout.is_zero()
        {
            return Err(Error::Invalid(format!(
                "hub options {options:?}: expected at least one worker, at least one connection per \
                 address and non-zero timeouts"
            )));
        }
        let server_error = |context: &'static str| {
            move |source: io::Error| Error::HubServer {
                address: address.to_owned(),
                context,
                source: source.into(),
            }
        };
        let listener = TcpListener::bind(address).map_err(server_error("cannot listen"))?;
        listener.set_nonblocking(true).map_err(server_error("cannot listen"))?;
        let bound = listener.local_addr().map_err(server_error("cannot listen"))?;
        let mut logbooks = Vec::with_capacity(options.workers);
        for _ in 1..options.workers {
            logbooks.push(Mutex::new(Logbook::open(logbook.path())?));
        }
        logbooks.push(Mutex::new(logbook));
        Ok(Hub { listener, logbooks, token, address: bound, options })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves requests until `stop` is set; requests in hand are finished first.
    pub fn serve_until(&self, stop: &AtomicBool) -> Result<()> {
        let peers = Mutex::new(HashMap::new());
        let (sender, receiver) = mpsc::sync_channel::<Accepted<'_>>(
            self.options.workers.saturating_mul(DEFAULT_QUEUE_PER_WORKER),
        );
        let receiver = Mutex::new(receiver);
        std::thread::scope(|scope| {
            for logbook in &self.logbooks {
                let receiver = &receiver;
                scope.spawn(move || {
                    loop {
                        let next = lock(receiver).recv();
                        match next {
                            Ok(accepted) => self.serve_connection(&lock(logbook), accepted),
                            Err(_) => break,
                        }
                    }
                });
            }
            let outcome = self.accept_until(stop, &sender, &peers);
            drop(sender);
            outcome
        })
    }

    fn accept_until<'p>(
        &self,
        stop: &AtomicBool,
        workers: &mpsc::SyncSender<Accepted<'p>>,
        peers: &'p Mutex<HashMap<IpAddr, usize>>,
    ) -> Result<()> {
        let mut last_connection = None::<Instant>;
        while !stop.load(Ordering::SeqCst) {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    last_connection = Some(Instant::now());
                    if stream.set_nonblocking(false).is_err() {
                        continue;
                    }
                    let Some(slot) =
                        PeerSlot::take(peers, peer.ip().to_canonical(), self.options.max_per_peer)
                    else {
                        refuse_at_once(
                            &stream,
                            429,
                            &format!(
                                "more than {} connections from {} at once; sync again later",
                                self.options.max_per_peer,
                                peer.ip().to_canonical()
                            ),
                        );
                        continue;
                    };
                    let accepted = Accepted { stream, at: Instant::now(), _slot: slot };
                    match workers.try_send(accepted) {
                        Ok(()) => {}
                        Err(TrySendError::Full(accepted)) => {
                            refuse_at_once(
                                &accepted.stream,
                                503,
                                "the hub is busy; sync again later",
                            );
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            return Err(Error::HubServer {
                                address: self.address.to_string(),
                                context: "every worker stopped",
                                source: "the workers' queue closed".into(),
                            });
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let busy = last_connection.is_some_and(|last| last.elapsed() < STOP_POLL);
                    std::thread::sleep(if busy { BUSY_POLL } else { STOP_POLL })
                }
                // A connection reset before it was taken, or out of file descriptors: the
                // server itself is fine, so wait a little and go on.
                Err(err) => {
                    eprintln!("hub on {}: cannot take a connection: {err}", self.address);
                    std::thread::sleep(STOP_POLL);
                }
            }
        }
        Ok(())
    }

    fn serve_connection(&self, logbook: &Logbook, accepted: Accepted<'_>) {
        let stream = &accepted.stream;
        let peer =
            stream.peer_addr().map_or_else(|_| "unknown peer".to_owned(), |peer| peer.to_string());
        let started = Instant::now();
        let _ = stream.set_write_timeout(Some(self.options.idle_timeout));
        let request_deadline = started + self.options.request_timeout;
        let mut reader = BufReader::new(DeadlineReader {
            stream,
            deadline: request_deadline.min(accepted.at + self.options.head_timeout),
            idle: self.options.idle_timeout,
        });
        let (line, answer) = match read_head(&mut reader) {
            Ok(head) => {
                reader.get_mut().deadline = request_deadline;
                let line = format!("{} {}", head.method, head.path);
                let answer = self.route(logbook, &head, &mut reader, stream, &peer);
                (line, answer)
            }
            Err(HeadError::Closed) => return,
            // A client that has not sent its head in time is cut off without lingering: it
            // would only hold the worker for longer.
            Err(HeadError::Answer(408, message)) => {
                eprintln!("{peer} (request head not sent in time): 408 {message}");
                respond(stream, &Answer::error(408, &message), false);
                return;
            }
            Err(HeadError::Answer(status, message)) => {
                ("(unreadable request)".to_owned(), Answer::error(status, &message))
            }
        };
        eprintln!(
            "{peer} {line}: {} {}",
            answer.status,
            answer.body.chars().take(300).collect::<String>()
        );
        respond(stream, &answer, true);
    }

    fn route(
        &self,
        logbook: &Logbook,
        head: &Head,
        reader: &mut impl Read,
        stream: &TcpStream,
        peer: &str,
    ) -> Answer {
        match (head.method.as_str(), head.path.as_str()) {
            ("POST", BATCHES_PATH) => self.receive_batch(logbook, head, reader, stream, peer),
            ("GET", RUNS_PATH) => {
                if self.token_presented(head) {
                    list_runs(logbook)
                } else {
                    Answer::error(401, "missing or wrong bearer token")
                }
            }
            (method, path @ (BATCHES_PATH | RUNS_PATH)) => {
                Answer::error(405, &format!("{method} is not allowed on {path}"))
            }
            (_, path) => Answer::error(
                404,
                &format!(
                    "no such endpoint {}; the hub serves POST {BATCHES_PATH} and GET {RUNS_PATH}",
                    path.chars().take(200).collect::<String>()
                ),
            ),
        }
    }

    fn token_presented(&self, head: &Head) -> bool {
        head.header("Authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|presented| self.token.matches(presented.trim()))
    }

    /// Checks the sender's key and the announced length, only then reads the body (bounded),
    /// verifies its signature and rows, and applies it.
    fn receive_batch(
        &self,
        logbook: &Logbook,
        head: &Head,
        reader: &mut impl Read,
        stream: &TcpStream,
        peer: &str,
    ) -> Answer {
        let origin = format!("batch from {peer}");
        let Some(key_hex) = head.header(DEVICE_KEY_HEADER) else {
            return Answer::error(
                401,
                &format!(
                    "{origin}: no {DEVICE_KEY_HEADER} header; this hub takes only batches signed by an enrolled device: \
                     enrol the device at the hub (synth-edge hub enroll) and sync with the key file the enrolment writes"
                ),
            );
        };
        let header_key = match PublicKey::from_hex(key_hex.trim()) {
            Ok(key) => key,
            Err(message) => {
                return Answer::error(401, &format!("{origin}: {DEVICE_KEY_HEADER}: {message}"));
            }
        };
        let sender = match enrolled_sender(logbook, &header_key, &origin) {
            Ok(sender) => sender,
            Err(err) => return Answer::from_error(&err),
        };
        if head.header("Transfer-Encoding").is_some() {
            return Answer::error(
                411,
                &format!("{origin}: send the batch with a Content-Length, not a transfer encoding"),
            );
        }
        let lengths: Vec<&str> = head
            .headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, value)| value.as_str())
            .collect();
        let length = match lengths.as_slice() {
            [] => return Answer::error(411, &format!("{origin}: no Content-Length")),
            [length] => match parse_length(length) {
                Some(length) => length,
                None => {
                    return Answer::error(
                        400,
                        &format!(
                            "{origin}: Content-Length `{}` is not a number of bytes",
                            length.chars().take(40).collect::<String>()
                        ),
                    );
                }
            },
            _ => return Answer::error(400, &format!("{origin}: more than one Content-Length")),
        };
        let signed_batch = match check_request_signature(head, &header_key, length, &origin) {
            Ok(batch_sha256) => batch_sha256,
            Err(message) => return Answer::error(401, &message),
        };
        if length > MAX_BATCH_BYTES as u64 {
            return Answer::error(
                413,
                &format!(
                    "{origin}: Content-Length {length} is over the {MAX_BATCH_BYTES} bytes a batch may have; sync with smaller batches"
                ),
            );
        }
        if head.header("Expect").is_some_and(|value| value.eq_ignore_ascii_case("100-continue")) {
            let mut writer = stream;
            if writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                return Answer::error(400, &format!("{origin}: the connection broke"));
            }
        }
        let mut body = Vec::new();
        match reader.take(length).read_to_end(&mut body) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                return Answer::error(408, &format!("{origin}: {err}; the batch was not read"));
            }
            Err(err) => {
                return Answer::error(400, &format!("{origin}: cannot read the body: {err}"));
            }
        }
        if body.len() as u64 != length {
            return Answer::error(
                400,
                &format!("{origin}: the body ended after {} of {length} bytes", body.len()),
            );
        }
        let decoded = Batch::decode(&body, &origin, |key| {
            if *key == header_key {
                Ok(())
            } else {
                Err(Error::Refused {
                    status: 403,
                    message: format!(
                        "{origin}: signed by key {}, but the request names key {}",
                        key.fingerprint(),
                        header_key.fingerprint()
                    ),
                })
            }
        });
        let batch = match decoded {
            Ok(batch) => batch,
            Err(err) => return Answer::from_error(&err),
        };
        if batch.payload_sha256 != signed_batch {
            return Answer::error(
                401,
                &format!(
                    "{origin}: the body carries batch {}, but the request was signed for batch {signed_batch}",
                    batch.payload_sha256
                ),
            );
        }
        match logbook.apply_rows(&sender, &header_key, &batch.source_device, &batch.rows) {
            Ok(summary) => Answer::json(
                200,
                &Acknowledgement { payload_sha256: batch.payload_sha256, summary },
            ),
            Err(err) => Answer::from_error(&err),
        }
    }
}

/// Checks a batch request's signature ([`request_signed_text`]) under `key`, its time within
/// [`REQUEST_FRESHNESS`] of now, for a body of `length` bytes; the batch checksum it signs, or
/// why the request is refused (`401`).
fn check_request_signature(
    head: &Head,
    key: &PublicKey,
    length: u64,
    origin: &str,
) -> std::result::Result<String, String> {
    let header = |name: &str| {
        head.header(name).map(str::trim).ok_or_else(|| {
            format!(
                "{origin}: no {name} header; the request must be signed with the device's key \
                 (synth-edge sync signs it)"
            )
        })
    };
    let signature = header(REQUEST_SIGNATURE_HEADER)?;
    let time = header(REQUEST_TIME_HEADER)?;
    let batch_sha256 = header(BATCH_SHA256_HEADER)?;
    let text = request_signed_text(&head.method, &head.path, length, time, batch_sha256);
    if !key.verifies(&text, signature) {
        return Err(format!(
            "{origin}: {REQUEST_SIGNATURE_HEADER}: does not verify under key {}: the request was altered or signed by another key",
            key.fingerprint()
        ));
    }
    let signed_at = parse_timestamp(time).ok_or_else(|| {
        format!(
            "{origin}: {REQUEST_TIME_HEADER}: `{}` is not RFC 3339 UTC, such as 2025-03-07T14:05:09.123Z",
            time.chars().take(40).collect::<String>().escape_debug()
        )
    })?;
    let now = SystemTime::now();
    let skew = now.duration_since(signed_at).unwrap_or_else(|err| err.duration());
    if skew > REQUEST_FRESHNESS {
        return Err(format!(
            "{origin}: {REQUEST_TIME_HEADER}: the request was signed at {time}, {} s from the hub's clock ({}); \
             at most {} s is accepted: check the device's clock",
            skew.as_secs(),
            crate::logbook::timestamp::rfc3339_utc(now),
            REQUEST_FRESHNESS.as_secs()
        ));
    }
    Ok(batch_sha256.to_owned())
}

/// `YYYY-MM-DDTHH:MM:SSZ`, optionally with `.` and 1 to 9 digits before the `Z`, as a time.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if bytes.len() < shape.len() + 1
        || !bytes
            .iter()
            .zip(shape)
            .all(|(byte, want)| if *want == b'd' { byte.is_ascii_digit() } else { byte == want })
    {
        return None;
    }
    let rest = text.get(shape.len()..)?;
    let fraction = rest.strip_suffix('Z')?;
    let nanos = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits)
            if (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let value: u32 = digits.parse().ok()?;
            value.checked_mul(10_u32.checked_pow(9 - digits.len() as u32)?)?
        }
        _ => return None,
    };
    let number = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

fn list_runs(logbook: &Logbook) -> Answer {
    let listing = logbook.devices().and_then(|devices| {
        Ok(Listing { devices, enrolled: logbook.enrolled_devices()?, runs: logbook.runs()? })
    });
    match listing {
        Ok(listing) => Answer::json(200, &listing),
        Err(err) => Answer::error(500, &error::chain(&err)),
    }
}

/// A lock whose holder panicked is still usable: the logbook and the queue stay consistent
/// (SQLite rolls back an unfinished transaction).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `Content-Length` value: decimal digits only, at most 20 of them.
fn parse_length(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Reads the request line and headers, at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] lines.
fn read_head(reader: &mut impl BufRead) -> std::result::Result<Head, HeadError> {
    let mut budget = MAX_HEAD_BYTES;
    let mut next_line = |first: bool| -> std::result::Result<String, HeadError> {
        let mut line = Vec::new();
        let read = reader.take(budget).read_until(b'\n', &mut line).map_err(|err| {
            if err.kind() == io::ErrorKind::TimedOut {
                HeadError::Answer(408, format!("{err}; the request was not read"))
            } else {
                HeadError::Answer(400, format!("cannot read the request: {err}"))
            }
        })?;
        budget = budget.saturating_sub(read as u64);
        if read == 0 && first {
            return Err(HeadError::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(if budget == 0 {
                HeadError::Answer(
                    431,
                    format!("the request line and headers are over {MAX_HEAD_BYTES} bytes"),
                )
            } else {
                HeadError::Answer(400, "the request ended inside its headers".to_owned())
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line)
            .map_err(|_| HeadError::Answer(400, "the request's head is not UTF-8".to_owned()))
    };
    let request_line = next_line(true)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Answer(
            400,
            "the request line is not `METHOD PATH HTTP/1.1`".to_owned(),
        ));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(HeadError::Answer(
            400,
            "the request line is not `METHOD PATH HTTP/1.1`".to_owned(),
        ));
    }
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let line = next_line(false)?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::Answer(431, format!("more than {MAX_HEADERS} headers")));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Answer(400, "a header line has no `:`".to_owned()));
        };
        if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_whitespace()) {
            return Err(HeadError::Answer(400, "a header name is empty or has spaces".to_owned()));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Head { method: method.to_owned(), path, headers })
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// Writes `answer` and closes the connection; with `linger`, first drains (and discards) what
/// the client still sends for a moment so that it sees the answer rather than a reset. The
/// accepting thread answers without lingering (and gives up a write after
/// [`BUSY_WRITE_TIMEOUT`]), so a flood of silent connections cannot stall it.
fn respond(stream: &TcpStream, answer: &Answer, linger: bool) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        reason_phrase(answer.status),
        answer.body.len()
    );
    if answer.status == 401 {
        head.push_str("WWW-Authenticate: Bearer\r\n");
    }
    head.push_str("\r\n");
    let mut writer = stream;
    let written = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(answer.body.as_bytes()))
        .and_then(|()| writer.flush());
    if written.is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    if !linger {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut scratch = [0_u8; 8192];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match (&mut &*stream).read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_head(request: &str, expected: Result<(&str, &str, usize), u16>) {
        let outcome = read_head(&mut request.as_bytes())
            .map(|head| (head.method.clone(), head.path.clone(), head.headers.len()));
        match (outcome, expected) {
            (Ok((method, path, n)), Ok((want_method, want_path, want_n))) => {
                assert_eq!((method.as_str(), path.as_str(), n), (want_method, want_path, want_n));
            }
            (Err(HeadError::Answer(status, _)), Err(want)) => {
                assert_eq!(status, want, "{request:?}")
            }
            (Err(HeadError::Closed), Err(want)) => assert_eq!(0, want, "{request:?}"),
            (Ok(_), Err(want)) => panic!("{request:?}: parsed, expected {want}"),
            (Err(_), Ok(_)) => panic!("{request:?}: refused, expected to parse"),
        }
    }

    #[test]
    fn request_heads_parse_or_get_the_status_that_says_why_not() {
        check_head(
            "GET /api/runs?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n",
            Ok(("GET", "/api/runs", 2)),
        );
        check_head("POST /api/batches HTTP/1.0\n\n", Ok(("POST", "/api/batches", 0)));
        check_head("", Err(0));
        check_head("GET /api/runs HTTP/1.1\r\nHost: h\r\n", Err(400));
        check_head("GET /api/runs\r\n\r\n", Err(400));
        check_head("GET api HTTP/1.1\r\n\r\n", Err(400));
        check_head("GET / HTTP/1.1\r\nno colon\r\n\r\n", Err(400));
        check_head("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", Err(400));
        check_head(&format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000)), Err(431));
        check_head(&format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(65)), Err(431));
        check_head("GET /\u{0} HTTP/1.1\r\n\r\n", Ok(("GET", "/\u{0}", 0)));
    }

    #[test]
    fn request_times_parse_as_the_logbook_writes_them() {
        for seconds in [0_u64, 951_782_400, 1_709_164_800, 1_735_689_599, 4_107_542_400] {
            let time = UNIX_EPOCH + Duration::from_millis(seconds * 1000 + 250);
            let text = crate::logbook::timestamp::rfc3339_utc(time);
            assert_eq!(parse_timestamp(&text), Some(time), "{text}");
        }
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
        for bad in [
            "",
            "2024-02-29T00:00:00",
            "2024-02-29T00:00:00.Z",
            "2024-13-01T00:00:00Z",
            "2024-02-29T24:00:00Z",
            "2024-02-29 00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-02-29T00:00:00.1234567890Z",
            "2024-02-29T00:00:00+01:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_lengths_are_plain_decimal_numbers() {
        assert_eq!(parse_length("1000000000000"), Some(1_000_000_000_000));
        assert_eq!(parse_length(" 12 "), Some(12));
        assert_eq!(parse_length("99999999999999999999"), None);
        assert_eq!(parse_length("-1"), None);
        assert_eq!(parse_length("+5"), None);
        assert_eq!(parse_length("0x10"), None);
        assert_eq!(parse_length(""), None);
    }
}
