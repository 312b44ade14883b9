//! A measured MySQL connection's session, spoken by poolbench itself over
//! a stream it owns (TCP, TLS, or the link emulator's stream): the packets
//! of the client/server protocol, the commands a request sends
//! (COM_STMT_PREPARE once per connection and statement, COM_STMT_EXECUTE
//! with binary parameters, their types only when the server does not have
//! them, COM_QUERY, COM_PING, COM_RESET_CONNECTION, COM_QUIT), and their
//! answers read to the end: every packet already in the read buffer taken
//! in one pass, the socket read again only for one not yet whole. A
//! result's rows and column definitions are stepped over by their length
//! where they lie in the read buffer, never copied. The setup (greeting,
//! TLS, authentication) is `connect.rs`'s, on the same packets.
//!
//! Why not the driver: mysql_async dials its own socket (no phases, no
//! round trips without the link's relay) and its request path (a
//! statement cache looked up by text, values and rows converted, a
//! future state machine per call) cost more client CPU per request than
//! sysbench's libmariadb; the bytes sent here are the same commands.
//!
//! What the server sends is not trusted: a packet that cannot be what the
//! command expects is a protocol error and leaves the session unusable,
//! never a panic.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use crate::backend::postgres::wire::Io;
use crate::backend::value::Value;

/// Capability flags (the client's and the server's).
pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const SSL: u32 = 1 << 11;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const PLUGIN_AUTH_LENENC_DATA: u32 = 1 << 21;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    /// MariaDB's extended capability (sent in the greeting's and the
    /// response's filler): the server sends a prepared statement's column
    /// definitions once, not with every execution's result.
    pub const MARIADB_CACHE_METADATA: u32 = 1 << 4;
}

/// SERVER_MORE_RESULTS_EXISTS: another result follows this one.
const MORE_RESULTS: u16 = 0x0008;

/// The commands a session sends.
const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_PING: u8 = 0x0e;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_RESET_CONNECTION: u8 = 0x1f;

/// A payload this long continues in the next packet.
const MAX_PAYLOAD: usize = 0xff_ffff;

/// How many statements a connection keeps prepared: a request with
/// another one prepares, executes and closes it (the server's statements
/// stay bounded, as with the driver's cache).
const KEPT: usize = 16;

/// How long a connection given up may take to say goodbye.
const FAREWELL: Duration = Duration::from_secs(1);

/// Why a call failed.
#[derive(Debug)]
pub enum WireError {
    /// The server answered with an ERR packet.
    Server(ServerError),
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// What the server sent is not what the command expects, or the
    /// client cannot go on (an authentication it does not do): the whole
    /// description.
    Protocol(String),
}

/// An ERR packet: the server's error number, SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Server(e) => write!(f, "ERROR {} ({}): {}", e.code, e.state, e.message),
            WireError::Io(e) => write!(f, "Input/output error: {e}"),
            WireError::Closed => f.write_str("Connection to the server is closed"),
            WireError::Protocol(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => WireError::Closed,
            _ => WireError::Io(e),
        }
    }
}

pub fn protocol(what: impl Into<String>) -> WireError {
    WireError::Protocol(what.into())
}

/// A statement this session prepared.
struct Statement {
    sql: Box<str>,
    id: u32,
    params: u16,
    /// The parameter types the server has for it (sent with the last
    /// execution that succeeded); empty until then.
    types: Vec<u8>,
}

/// Where reading a command's results stands (see [`Wire::step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// A result begins: OK, ERR, or a result set's column count.
    Begin,
    /// This many column definitions to step over.
    Definitions(u64),
    /// The EOF packet after the definitions (without DEPRECATE_EOF).
    DefinitionsEnd,
    /// Rows, up to the result's end (EOF, or OK with DEPRECATE_EOF).
    Rows,
    /// The command's last result was read.
    Done,
}

/// One open session.
pub struct Wire {
    /// None only once closed or taken back (for TLS).
    stream: Option<Box<dyn Io>>,
    /// The packet being written; empty between calls.
    out: BytesMut,
    /// Bytes read and not yet consumed.
    input: BytesMut,
    /// The next packet's sequence number.
    seq: u8,
    /// The capabilities both sides have.
    caps: u32,
    /// Both sides have MariaDB's metadata cache.
    cache_metadata: bool,
    prepared: Vec<Statement>,
    /// A call was abandoned midway, or the stream failed: the session
    /// cannot be used again.
    broken: bool,
}

impl Wire {
    pub fn new(stream: Box<dyn Io>) -> Wire {
        Wire {
            stream: Some(stream),
            out: BytesMut::with_capacity(256),
            input: BytesMut::with_capacity(8192),
            seq: 0,
            caps: 0,
            cache_metadata: false,
            prepared: Vec::new(),
            broken: false,
        }
    }

    /// The capabilities the session agreed on (set by the handshake).
    pub fn agree(&mut self, caps: u32, cache_metadata: bool) {
        self.caps = caps;
        self.cache_metadata = cache_metadata;
    }

    /// The stream back, for its TLS handshake: nothing may be buffered
    /// (the server waits for the client when this is called).
    pub fn take_stream(&mut self) -> Result<Box<dyn Io>, WireError> {
        if !self.input.is_empty() {
            return Err(protocol(
                "the server sent more than its greeting before the TLS handshake",
            ));
        }
        self.stream.take().ok_or(WireError::Closed)
    }

    /// The stream again, after the TLS handshake.
    pub fn put_stream(&mut self, stream: Box<dyn Io>) {
        self.stream = Some(stream);
    }

    /// The sequence number the next packet sent takes.
    pub fn set_seq(&mut self, seq: u8) {
        self.seq = seq;
    }

    /// Writes one packet whose payload `payload` writes (a command begins
    /// a new sequence: `set_seq(0)` first).
    pub async fn send(&mut self, payload: impl FnOnce(&mut BytesMut)) -> Result<(), WireError> {
        self.out.clear();
        self.out.put_slice(&[0, 0, 0, 0]);
        payload(&mut self.out);
        let len = self.out.len() - 4;
        if len >= MAX_PAYLOAD {
            self.out.clear();
            return Err(protocol(format!(
                "a packet of {len} bytes is more than poolbench sends in one (16 MiB)"
            )));
        }
        self.out[..3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
        self.out[3] = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let stream = self.stream.as_mut().ok_or(WireError::Closed)?;
        stream.write_all(&self.out).await?;
        stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Reads until the next packet is whole in the read buffer and returns
    /// its payload's length: it is `self.input[4..4 + len]` until
    /// [`Wire::consume`]. A payload split over several packets (16 MiB and
    /// more) is joined first.
    pub async fn packet(&mut self) -> Result<usize, WireError> {
        let mut len = self.whole().await?;
        if len < MAX_PAYLOAD {
            return Ok(len);
        }
        // Rare (16 MiB and more): the payloads are copied together, behind
        // a header of zeros (the length returned is the joined one's).
        let mut joined = BytesMut::from(&[0u8; 4][..]);
        loop {
            joined.put_slice(&self.input[4..4 + len]);
            self.input.advance(4 + len);
            if len < MAX_PAYLOAD {
                break;
            }
            len = self.whole().await?;
        }
        let total = joined.len() - 4;
        joined.put_slice(&self.input);
        self.input = joined;
        Ok(total)
    }

    /// Reads until a whole packet begins the read buffer; returns its
    /// payload's length.
    async fn whole(&mut self) -> Result<usize, WireError> {
        loop {
            if let Some(len) = self.whole_now() {
                return Ok(len);
            }
            self.fill().await?;
        }
    }

    /// The payload's length of the packet that begins the read buffer, if
    /// it is whole there (its sequence number then taken), without
    /// waiting.
    fn whole_now(&mut self) -> Option<usize> {
        let header = self.input.get(..4)?;
        let len = payload_len(header);
        if self.input.len() < 4 + len {
            return None;
        }
        self.seq = header[3].wrapping_add(1);
        Some(len)
    }

    /// One read from the socket into the read buffer (room made for the
    /// packet begun, or 4 KiB).
    async fn fill(&mut self) -> Result<(), WireError> {
        let want = match self.input.get(..4) {
            Some(header) => 4 + payload_len(header) - self.input.len(),
            None => 4096,
        };
        self.input.reserve(want);
        let stream = self.stream.as_mut().ok_or(WireError::Closed)?;
        if stream.read_buf(&mut self.input).await? == 0 {
            return Err(WireError::Closed);
        }
        Ok(())
    }

    /// The payload of the packet [`Wire::packet`] returned.
    pub fn payload(&self, len: usize) -> &[u8] {
        &self.input[4..4 + len]
    }

    /// Drops the packet [`Wire::packet`] returned from the read buffer.
    pub fn consume(&mut self, len: usize) {
        self.input.advance(4 + len);
    }

    /// Reads a packet that must be OK (or ERR): the authentication's end,
    /// COM_PING's and COM_RESET_CONNECTION's answer.
    async fn ok(&mut self) -> Result<(), WireError> {
        let len = self.packet().await?;
        let answer = match self.payload(len).first() {
            Some(0x00) => Ok(()),
            Some(0xff) => Err(self.error(len)),
            _ => Err(protocol(format!(
                "the server answered with a packet that is neither OK nor ERR (0x{:02x})",
                self.payload(len).first().copied().unwrap_or(0)
            ))),
        };
        self.consume(len);
        answer
    }

    /// The ERR packet [`Wire::packet`] returned, parsed (not consumed).
    pub fn error(&self, len: usize) -> WireError {
        WireError::Server(server_error(self.payload(len)))
    }

    /// Runs `sql` with `values` as a prepared statement (prepared first,
    /// one round trip, if this session has not prepared it yet), every row
    /// read. The parameters' types go with the values only when the server
    /// does not have them already (the first execution, or other types
    /// than the last), as libmysqlclient and libmariadb send them.
    pub async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<(), WireError> {
        self.begin()?;
        let i = match self.prepared.iter().position(|s| *s.sql == *sql) {
            Some(i) => i,
            None => {
                let (id, params) = self.prepare(sql).await?;
                if self.prepared.len() == KEPT {
                    // Not kept: run once, then closed.
                    return self.execute_once(id, params, values).await;
                }
                self.prepared.push(Statement {
                    sql: sql.into(),
                    id,
                    params,
                    types: Vec::new(),
                });
                self.prepared.len() - 1
            }
        };
        let statement = &self.prepared[i];
        let (id, params) = (statement.id, statement.params);
        if usize::from(params) != values.len() {
            self.broken = false;
            return Err(wrong_count(params, values));
        }
        let bound = statement.types.len() == values.len()
            && statement
                .types
                .iter()
                .zip(values)
                .all(|(t, v)| *t == type_of(v));
        self.set_seq(0);
        self.send(|out| execute_packet(out, id, values, !bound))
            .await?;
        let answer = self.results().await;
        // After an error the types are sent again: whether the server kept
        // them is not known.
        let types = &mut self.prepared[i].types;
        types.clear();
        if answer.is_ok() {
            types.extend(values.iter().map(type_of));
        }
        self.end(answer)
    }

    /// Executes the statement `id` just prepared, types sent, then closes
    /// it (COM_STMT_CLOSE has no answer).
    async fn execute_once(
        &mut self,
        id: u32,
        params: u16,
        values: &[Value],
    ) -> Result<(), WireError> {
        let counted = usize::from(params) == values.len();
        let answer = if counted {
            self.set_seq(0);
            self.send(|out| execute_packet(out, id, values, true))
                .await?;
            self.results().await
        } else {
            Ok(())
        };
        self.set_seq(0);
        self.send(|out| {
            out.put_u8(COM_STMT_CLOSE);
            out.put_u32_le(id);
        })
        .await?;
        if !counted {
            self.broken = false;
            return Err(wrong_count(params, values));
        }
        self.end(answer)
    }

    /// COM_STMT_PREPARE: the statement's id and parameter count; its
    /// parameter and column definitions are stepped over.
    async fn prepare(&mut self, sql: &str) -> Result<(u32, u16), WireError> {
        self.set_seq(0);
        self.send(|out| {
            out.put_u8(COM_STMT_PREPARE);
            out.put_slice(sql.as_bytes());
        })
        .await?;
        let len = self.packet().await?;
        let p = self.payload(len);
        match p.first() {
            Some(0x00) if p.len() >= 9 => {}
            Some(0xff) => {
                let e = self.error(len);
                self.consume(len);
                self.broken = false;
                return Err(e);
            }
            _ => return Err(protocol("a malformed answer to COM_STMT_PREPARE")),
        }
        let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
        let columns = u16::from_le_bytes([p[5], p[6]]);
        let params = u16::from_le_bytes([p[7], p[8]]);
        self.consume(len);
        for count in [params, columns] {
            if count > 0 {
                self.skip_definitions(u64::from(count)).await?;
            }
        }
        Ok((id, params))
    }

    /// Steps over `count` column (or parameter) definitions and, without
    /// DEPRECATE_EOF, the EOF packet after them.
    async fn skip_definitions(&mut self, count: u64) -> Result<(), WireError> {
        for _ in 0..count {
            let len = self.packet().await?;
            if self.payload(len).first() == Some(&0xff) {
                return Err(self.error(len));
            }
            self.consume(len);
        }
        if self.caps & caps::DEPRECATE_EOF == 0 {
            let len = self.packet().await?;
            if !is_eof(self.payload(len)) {
                return Err(protocol("no EOF packet after the column definitions"));
            }
            self.consume(len);
        }
        Ok(())
    }

    /// COM_QUERY: `sql` as text, every result and row read.
    pub async fn query(&mut self, sql: &str) -> Result<(), WireError> {
        self.begin()?;
        self.set_seq(0);
        self.send(|out| {
            out.put_u8(COM_QUERY);
            out.put_slice(sql.as_bytes());
        })
        .await?;
        let answer = self.results().await;
        self.end(answer)
    }

    /// Reads a command's results to the end: each one OK, ERR, or a result
    /// set (column count, definitions, rows, the closing EOF or OK), as
    /// long as the server says more follow. Every packet already in the
    /// read buffer is taken in one pass, without waiting ([`Wire::step`]);
    /// the socket is read only when the next one is not whole there.
    async fn results(&mut self) -> Result<(), WireError> {
        let mut step = Step::Begin;
        loop {
            while let Some(len) = self.whole_now() {
                // Rare (16 MiB and more): its packets joined first.
                let len = if len >= MAX_PAYLOAD {
                    self.packet().await?
                } else {
                    len
                };
                step = self.step(step, len)?;
                if step == Step::Done {
                    return Ok(());
                }
            }
            self.fill().await?;
        }
    }

    /// Takes the whole packet [`Wire::packet`] (or [`Wire::whole_now`])
    /// found while reading results at `step`, and says where they stand
    /// after it. Rows and definitions are stepped over where they lie.
    fn step(&mut self, step: Step, len: usize) -> Result<Step, WireError> {
        let p = self.payload(len);
        let first = p.first().copied();
        let next = match (step, first) {
            (_, Some(0xff)) => {
                let e = self.error(len);
                self.consume(len);
                return Err(e);
            }
            (Step::Begin, None) => return Err(protocol("an empty packet where a result begins")),
            (Step::Begin, Some(0x00)) => self.ended(ok_status(p)),
            (Step::Begin, Some(0xfb)) => {
                return Err(protocol(
                    "the server asked for a local file (LOAD DATA LOCAL), which poolbench does not send",
                ))
            }
            (Step::Begin, Some(_)) => {
                let mut rest = p;
                let columns =
                    lenenc(&mut rest).ok_or_else(|| protocol("a malformed column count"))?;
                // MariaDB's cached metadata: a flag says whether the
                // definitions follow.
                if self.cache_metadata && rest.first() == Some(&0) {
                    Step::Rows
                } else {
                    self.after_definitions(columns)
                }
            }
            (Step::Definitions(n), _) => self.after_definitions(n - 1),
            (Step::DefinitionsEnd, _) if is_eof(p) => Step::Rows,
            (Step::DefinitionsEnd, _) => {
                return Err(protocol("no EOF packet after the column definitions"))
            }
            (Step::Rows, Some(0xfe)) if len < MAX_PAYLOAD => {
                let status = if self.caps & caps::DEPRECATE_EOF != 0 {
                    ok_status(p)
                } else {
                    eof_status(p)
                };
                self.ended(Some(status.unwrap_or(0)))
            }
            (Step::Rows, _) => Step::Rows,
            (Step::Done, _) => return Err(protocol("a packet after the last result")),
        };
        self.consume(len);
        Ok(next)
    }

    /// Where results stand with `n` column definitions still to come.
    fn after_definitions(&self, n: u64) -> Step {
        match n {
            0 if self.caps & caps::DEPRECATE_EOF == 0 => Step::DefinitionsEnd,
            0 => Step::Rows,
            n => Step::Definitions(n),
        }
    }

    /// A result ended with the server status `status`: another follows,
    /// or the command's results are read.
    fn ended(&self, status: Option<u16>) -> Step {
        if status.unwrap_or(0) & MORE_RESULTS == 0 {
            Step::Done
        } else {
            Step::Begin
        }
    }

    /// COM_PING: whether the server answers.
    pub async fn ping(&mut self) -> Result<(), WireError> {
        self.simple_command(COM_PING).await
    }

    /// COM_RESET_CONNECTION: the session as new (its statements dropped).
    pub async fn reset(&mut self) -> Result<(), WireError> {
        self.prepared.clear();
        self.simple_command(COM_RESET_CONNECTION).await
    }

    async fn simple_command(&mut self, command: u8) -> Result<(), WireError> {
        self.begin()?;
        self.set_seq(0);
        self.send(|out| out.put_u8(command)).await?;
        let answer = self.ok().await;
        self.end(answer)
    }

    /// Forgets the statements prepared (the server's were dropped).
    pub fn forget_statements(&mut self) {
        self.prepared.clear();
    }

    /// A call begins: the session is broken until it ends (a call dropped
    /// midway leaves the protocol's state unknown).
    fn begin(&mut self) -> Result<(), WireError> {
        if self.broken || self.stream.is_none() {
            return Err(WireError::Closed);
        }
        self.broken = true;
        Ok(())
    }

    /// A call ended with `answer`: the session is usable again after the
    /// server's error, not after a stream or protocol failure.
    fn end(&mut self, answer: Result<(), WireError>) -> Result<(), WireError> {
        self.broken = !matches!(answer, Ok(()) | Err(WireError::Server(_)));
        answer
    }

    /// Whether the session is known to be unusable, checked without
    /// waiting: a broken call, or the server's end closed or an error sent
    /// while it sat idle (a connection killed, the server shutting down).
    /// It costs at most one non-blocking read, and nothing when the runtime
    /// has heard nothing from the socket since the last read
    /// ([`Io::may_be_readable`]).
    pub fn is_closed(&mut self) -> bool {
        if self.broken {
            return true;
        }
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        if !stream.may_be_readable() {
            return false;
        }
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        self.input.reserve(1024);
        match tokio_util::io::poll_read_buf(Pin::new(stream.as_mut()), &mut cx, &mut self.input) {
            Poll::Pending => false,
            // Anything unasked for (an ERR), EOF or a failure.
            Poll::Ready(_) => {
                self.broken = true;
                true
            }
        }
    }

    /// Closes the session as an application's close does: COM_QUIT, then
    /// the socket (TLS close_notify first). Bounded by [`FAREWELL`].
    pub async fn close(mut self) {
        if self.stream.is_none() {
            return;
        }
        let farewell = async {
            self.set_seq(0);
            if self.send(|out| out.put_u8(COM_QUIT)).await.is_ok() {
                if let Some(stream) = self.stream.as_mut() {
                    let _ = stream.shutdown().await;
                }
            }
        };
        let _ = tokio::time::timeout(FAREWELL, farewell).await;
    }
}

/// COM_STMT_EXECUTE's payload: no cursor, one iteration, none NULL, the
/// values; with `types`, the parameters' types before them
/// (new-params-bound 1), else none (0: the server's from the last time).
fn execute_packet(out: &mut BytesMut, id: u32, values: &[Value], types: bool) {
    // The fixed part in one copy (each `put` checks the capacity and moves
    // the length on: 10 bytes in four of them were a few hundred
    // instructions a request).
    let mut head = [COM_STMT_EXECUTE, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    head[1..5].copy_from_slice(&id.to_le_bytes());
    out.put_slice(&head);
    if values.is_empty() {
        return;
    }
    match values.len() {
        // None NULL, and whether the types follow.
        1..=8 => out.put_slice(&[0, u8::from(types)]),
        n => {
            out.put_bytes(0, n.div_ceil(8));
            out.put_u8(u8::from(types));
        }
    }
    if types {
        for v in values {
            // The type, and the unsigned flag (none).
            out.put_slice(&[type_of(v), 0]);
        }
    }
    for v in values {
        match v {
            Value::Int(i) => out.put_i64_le(*i),
            Value::Bool(b) => out.put_i64_le(i64::from(*b)),
            Value::Float(f) => out.put_f64_le(*f),
            Value::Text(s) => {
                put_lenenc(out, s.len() as u64);
                out.put_slice(s.as_bytes());
            }
        }
    }
}

/// The type a value is sent as.
fn type_of(v: &Value) -> u8 {
    match v {
        Value::Int(_) | Value::Bool(_) => 0x08, // MYSQL_TYPE_LONGLONG
        Value::Float(_) => 0x05,                // MYSQL_TYPE_DOUBLE
        Value::Text(_) => 0xfd,                 // MYSQL_TYPE_VAR_STRING
    }
}

/// A statement given another number of values than it has parameters.
fn wrong_count(params: u16, values: &[Value]) -> WireError {
    protocol(format!(
        "the statement has {params} parameters but {} values were given",
        values.len()
    ))
}

/// The payload's length a packet's header gives.
fn payload_len(header: &[u8]) -> usize {
    usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16
}

/// A length-encoded integer.
pub fn put_lenenc(out: &mut BytesMut, n: u64) {
    match n {
        0..=250 => out.put_u8(n as u8),
        251..=0xffff => {
            out.put_u8(0xfc);
            out.put_u16_le(n as u16);
        }
        0x1_0000..=0xff_ffff => {
            out.put_u8(0xfd);
            out.put_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.put_u8(0xfe);
            out.put_u64_le(n);
        }
    }
}

/// Reads a length-encoded integer off the front of `p`.
pub fn lenenc(p: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = p.split_first()?;
    let width = match first {
        0..=250 => {
            *p = rest;
            return Some(u64::from(first));
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    let mut n = [0u8; 8];
    n[..width].copy_from_slice(bytes);
    *p = &rest[width..];
    Some(u64::from_le_bytes(n))
}

/// An EOF packet (before DEPRECATE_EOF): 0xfe and at most 8 bytes more.
fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// An EOF packet's server status.
fn eof_status(p: &[u8]) -> Option<u16> {
    p.get(3..5).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

/// An OK packet's server status (after its header byte, affected rows and
/// last insert id).
fn ok_status(p: &[u8]) -> Option<u16> {
    let mut rest = p.get(1..)?;
    lenenc(&mut rest)?;
    lenenc(&mut rest)?;
    rest.get(..2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

/// An ERR packet's parts: 0xff, the code, `#` and the SQLSTATE, the
/// message.
pub fn server_error(p: &[u8]) -> ServerError {
    let code = p.get(1..3).map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
    let rest = p.get(3..).unwrap_or_default();
    let (state, message) = match rest.split_first() {
        Some((b'#', r)) if r.len() >= 5 => (String::from_utf8_lossy(&r[..5]).into_owned(), &r[5..]),
        _ => ("HY000".to_string(), rest),
    };
    ServerError {
        code,
        state,
        message: String::from_utf8_lossy(message).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_encoded_integers_round_trip() {
        for n in [
            0,
            250,
            251,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = BytesMut::new();
            put_lenenc(&mut out, n);
            let mut p = &out[..];
            assert_eq!(lenenc(&mut p), Some(n));
            assert!(p.is_empty());
        }
        assert_eq!(lenenc(&mut &[0xfc, 1][..]), None);
        assert_eq!(lenenc(&mut &[0xff][..]), None);
    }

    #[test]
    fn an_err_packet_gives_its_code_state_and_message() {
        let mut p = vec![0xff, 0x15, 0x04, b'#'];
        p.extend_from_slice(b"28000Access denied");
        let e = server_error(&p);
        assert_eq!((e.code, e.state.as_str()), (1045, "28000"));
        assert_eq!(e.message, "Access denied");
        // Before the handshake: no SQLSTATE.
        let e = server_error(&[0xff, 0x10, 0x04, b'T', b'o', b'o']);
        assert_eq!(
            (e.code, e.state.as_str(), e.message.as_str()),
            (1040, "HY000", "Too")
        );
        assert_eq!(server_error(&[0xff]).code, 0);
    }

    #[test]
    fn execute_sends_types_then_values() {
        let mut out = BytesMut::new();
        execute_packet(
            &mut out,
            7,
            &[Value::Int(-2), Value::Text("ab".into()), Value::Float(0.5)],
            true,
        );
        let mut want = vec![COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
        want.extend_from_slice(&[0x08, 0, 0xfd, 0, 0x05, 0]);
        want.extend_from_slice(&(-2i64).to_le_bytes());
        want.extend_from_slice(&[2, b'a', b'b']);
        want.extend_from_slice(&0.5f64.to_le_bytes());
        assert_eq!(&out[..], &want[..]);
        // Nine values: a null bitmap of two bytes; no types this time.
        let mut out = BytesMut::new();
        execute_packet(&mut out, 0x0102_0304, &vec![Value::Bool(true); 9], false);
        let mut want = vec![COM_STMT_EXECUTE, 4, 3, 2, 1, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..9 {
            want.extend_from_slice(&1i64.to_le_bytes());
        }
        assert_eq!(&out[..], &want[..]);
        // None: the fixed part alone.
        let mut out = BytesMut::new();
        execute_packet(&mut out, 7, &[], true);
        assert_eq!(&out[..], &[COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn statuses_of_ok_and_eof() {
        assert_eq!(ok_status(&[0, 0, 0, 0x08, 0, 0, 0]), Some(MORE_RESULTS));
        assert_eq!(ok_status(&[0xfe, 0xfc, 1, 0, 0, 2, 0]), Some(2));
        assert_eq!(eof_status(&[0xfe, 0, 0, 0x08, 0]), Some(MORE_RESULTS));
        assert!(is_eof(&[0xfe, 0, 0, 2, 0]));
        assert_eq!(ok_status(&[0]), None);
    }

    /// A session whose server sends `packets` (payloads, numbered from 1)
    /// and nothing more, with `caps` agreed and MariaDB's metadata cache
    /// or not.
    async fn answered(packets: &[&[u8]], caps: u32, cache: bool) -> (Wire, Result<(), WireError>) {
        use tokio::io::AsyncWriteExt;
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut bytes = Vec::new();
        for (seq, p) in packets.iter().enumerate() {
            bytes.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
            bytes.push(seq as u8 + 1);
            bytes.extend_from_slice(p);
        }
        // Written in two pieces: a packet split across reads.
        let (a, b) = bytes.split_at(bytes.len() / 2);
        let (a, b) = (a.to_vec(), b.to_vec());
        tokio::spawn(async move {
            server.write_all(&a).await.unwrap();
            tokio::task::yield_now().await;
            server.write_all(&b).await.unwrap();
            // Held open: a read past the answer would wait, not fail.
            std::future::pending::<()>().await;
        });
        let mut wire = Wire::new(Box::new(client));
        wire.agree(caps, cache);
        let answer = wire.results().await;
        (wire, answer)
    }

    /// An idle session on a real socket (loopback TCP): not closed while
    /// the server is silent, and then the socket's readiness is read
    /// without a read; closed once the server sends what was not asked
    /// for, or closes its end.
    #[tokio::test]
    async fn an_idle_session_over_tcp_is_seen_closed() {
        use tokio::io::AsyncWriteExt;
        use tokio::net::{TcpListener, TcpStream};
        // Long enough for the runtime's I/O driver to hear of the socket.
        let settle = || tokio::time::sleep(Duration::from_millis(20));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        for server_closes in [false, true] {
            let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
            let mut server = accepted.unwrap().0;
            let mut wire = Wire::new(Box::new(client.unwrap()));
            settle().await;
            assert!(!wire.stream.as_ref().unwrap().may_be_readable());
            assert!(!wire.is_closed());
            if server_closes {
                drop(server);
            } else {
                // An ERR packet while idle (a connection killed).
                server.write_all(&[1, 0, 0, 0, 0xff]).await.unwrap();
            }
            settle().await;
            assert!(wire.stream.as_ref().unwrap().may_be_readable());
            assert!(wire.is_closed(), "server closes: {server_closes}");
        }
    }

    const ROW: &[u8] = &[0x00, 0x00, 0x02, b'h', b'i'];
    const DEFINITION: &[u8] = &[3, b'd', b'e', b'f', 0, 0, 0, 1, b'c', 0];

    #[tokio::test]
    async fn results_are_read_to_their_end() {
        let eof = caps::DEPRECATE_EOF;
        // MariaDB's cached metadata: no definitions, the closing OK.
        let (wire, answer) =
            answered(&[&[1, 0], ROW, ROW, &[0xfe, 0, 0, 2, 0, 0, 0]], eof, true).await;
        assert!(answer.is_ok() && wire.input.is_empty(), "{answer:?}");
        // The metadata sent again (flag 1): the definitions stepped over.
        let (wire, answer) = answered(
            &[&[1, 1], DEFINITION, ROW, &[0xfe, 0, 0, 2, 0, 0, 0]],
            eof,
            true,
        )
        .await;
        assert!(answer.is_ok() && wire.input.is_empty(), "{answer:?}");
        // Without DEPRECATE_EOF: EOF after the definitions and the rows.
        let (wire, answer) = answered(
            &[
                &[1],
                DEFINITION,
                &[0xfe, 0, 0, 2, 0],
                ROW,
                &[0xfe, 0, 0, 2, 0],
            ],
            0,
            false,
        )
        .await;
        assert!(answer.is_ok() && wire.input.is_empty(), "{answer:?}");
        // Two results (SERVER_MORE_RESULTS_EXISTS on the first OK).
        let (wire, answer) = answered(
            &[&[0, 0, 0, 0x08, 0, 0, 0], &[0, 1, 0, 2, 0, 0, 0]],
            eof,
            true,
        )
        .await;
        assert!(answer.is_ok() && wire.input.is_empty(), "{answer:?}");
        // The server's error among the rows ends the command.
        let mut err = vec![0xff, 0x15, 0x04, b'#'];
        err.extend_from_slice(b"HY000no");
        let (wire, answer) = answered(&[&[1, 0], ROW, &err], eof, true).await;
        assert!(
            matches!(answer, Err(WireError::Server(ref e)) if e.code == 1045),
            "{answer:?}"
        );
        assert!(wire.input.is_empty());
        // A packet that cannot end the definitions.
        let (_, answer) = answered(&[&[1], DEFINITION, ROW], 0, false).await;
        assert!(matches!(answer, Err(WireError::Protocol(_))), "{answer:?}");
    }
}
