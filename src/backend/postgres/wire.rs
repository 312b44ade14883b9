//! A measured connection's session once it is open: the request's own task
//! writes each statement's messages to the socket and reads the answer
//! back, as libpq does in the caller's loop, with no task or channel
//! between the request and the socket. The bytes are those tokio-postgres
//! sends for the same calls (`prepare` then `query_raw`, `query_typed_raw`,
//! `batch_execute`, and Terminate on close), so what the server sees and
//! what each phase times is unchanged; what goes is the driver's own cost
//! per query (a connection task and two channel hops), which made the
//! load generator slower than pgbench. The setup (TCP, TLS, startup,
//! authentication) stays tokio-postgres' own: `connect.rs` hands its
//! stream over once the session is ready.
//!
//! The server's messages are framed by postgres-protocol's header parser
//! and parsed by its backend parser (the ones tokio-postgres reads with),
//! which splits a message off the read buffer without copying it; those
//! whose content no call reads are stepped over by their length instead
//! (see [`stepped_over`]). What the server sends is not trusted: a frame
//! that cannot be a message, or a message a session never gets, is a
//! connection error and leaves the session unusable, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use postgres_protocol::message::backend::{self, DataRowBody, ErrorResponseBody, Header, Message};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_postgres::fallible_iterator::FallibleIterator;
use tokio_postgres::types::{ToSql, Type};

/// The stream a session runs on: TLS or not, across the link emulator or
/// not.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {
    /// Whether a read now could find anything (bytes, the end of the
    /// stream, an error), as far as the runtime has heard from the socket:
    /// false only when nothing arrived since a read last found it empty.
    /// Asked without a system call and without replacing the waker the
    /// task registered for its next read, as a poll for the same answer
    /// would (the check before every pooled request: [`Wire::is_closed`]).
    /// A stream that cannot tell says true, and the caller reads.
    fn may_be_readable(&self) -> bool {
        true
    }
}

/// A socket's readiness for reading, as a read itself asks for it: input
/// or the end of the stream (the read half closed). The runtime sets it
/// when its I/O driver hears of either, and clears it only when a read
/// found nothing (or came back short: the socket emptied); `try_io` with
/// an operation that succeeds reads it and leaves it as it is. (One
/// interest only: `try_io` masks by a single one, a combined interest
/// would match nothing.)
const INPUT: tokio::io::Interest = tokio::io::Interest::READABLE;

impl Io for tokio::net::TcpStream {
    fn may_be_readable(&self) -> bool {
        self.try_io(INPUT, || Ok(())).is_ok()
    }
}

impl Io for tokio::net::UnixStream {
    fn may_be_readable(&self) -> bool {
        self.try_io(INPUT, || Ok(())).is_ok()
    }
}

/// The link emulator's pipe cannot tell: the caller reads.
impl Io for tokio::io::DuplexStream {}

/// Over TLS, readable when rustls holds what a read would return
/// (plaintext, the peer's close_notify: it then stops wanting to read) or
/// the socket under it may be.
impl<S: Io> Io for tokio_rustls::client::TlsStream<S> {
    fn may_be_readable(&self) -> bool {
        let (socket, tls) = self.get_ref();
        !tls.wants_read() || socket.may_be_readable()
    }
}

impl<S: Io> Io for tokio_rustls::server::TlsStream<S> {
    fn may_be_readable(&self) -> bool {
        let (socket, tls) = self.get_ref();
        !tls.wants_read() || socket.may_be_readable()
    }
}

impl Io for Box<dyn Io> {
    fn may_be_readable(&self) -> bool {
        (**self).may_be_readable()
    }
}

/// The number in the next statement's name.
static NEXT_STATEMENT: AtomicU64 = AtomicU64::new(0);

/// How long a connection given up (dropped without being closed) may take
/// to say goodbye before its socket is simply closed.
const FAREWELL: Duration = Duration::from_secs(1);

/// One open session.
pub struct Wire {
    /// None only once closed (or while being given up).
    stream: Option<Box<dyn Io>>,
    /// Messages being written; empty between calls.
    out: BytesMut,
    /// Bytes read and not yet consumed.
    input: BytesMut,
    /// Named statements this session prepared, by SQL.
    prepared: HashMap<String, String>,
    /// Sent since the last ReadyForQuery (the call was abandoned midway),
    /// or the stream failed: the session cannot be used again.
    broken: bool,
}

/// Why a call failed.
#[derive(Debug)]
pub enum WireError {
    /// The server answered with an error.
    Db(Box<DbError>),
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// A value could not be encoded for its parameter.
    Encode(String),
    /// The server sent a message this session does not expect (COPY, a
    /// message of the startup) or one that cannot be parsed (a malformed
    /// frame): the session is given up. Holds the whole description.
    Protocol(String),
}

/// The fields of an ErrorResponse that poolbench reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The same words as tokio-postgres' errors, which the rest of
        // poolbench (and its reports) show.
        match self {
            WireError::Db(e) => write!(f, "{} ({}): {}", e.severity, e.code, e.message),
            WireError::Io(e) => write!(f, "error communicating with the server: {e}"),
            WireError::Closed => f.write_str("connection closed"),
            WireError::Encode(m) => write!(f, "error serializing a value: {m}"),
            WireError::Protocol(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for WireError {}

/// What ended a call: its first error, if any.
type Answer = Result<Option<String>, WireError>;

impl Wire {
    pub fn new(stream: Box<dyn Io>) -> Wire {
        Wire {
            stream: Some(stream),
            out: BytesMut::with_capacity(1024),
            input: BytesMut::with_capacity(8192),
            prepared: HashMap::new(),
            broken: false,
        }
    }

    /// Runs a statement prepared under a name on this session (prepared
    /// first, one round trip, if this session has not prepared it yet)
    /// with `values` bound as `types`, and reads every row.
    pub async fn query_named(
        &mut self,
        sql: &str,
        types: &[Type],
        values: &[impl ToSql],
    ) -> Result<(), WireError> {
        let name = match self.prepared.get(sql) {
            Some(name) => name,
            None => {
                // Unique in the process, as tokio-postgres names them: a
                // pooler that runs two clients' statements on one server
                // connection must not find a name it already has.
                let name = format!("s{}", NEXT_STATEMENT.fetch_add(1, Ordering::Relaxed));
                // As tokio-postgres' prepare: the server infers the types.
                encode(&mut self.out, |buf| {
                    frontend::parse(&name, sql, std::iter::empty(), buf)?;
                    frontend::describe(b'S', &name, buf)?;
                    frontend::sync(buf);
                    Ok(())
                })?;
                self.round_trip(false).await?;
                self.prepared.entry(sql.to_owned()).or_insert(name)
            }
        };
        encode_bind(&mut self.out, name, types, values)?;
        encode(&mut self.out, execute)?;
        self.round_trip(false).await.map(drop)
    }

    /// Parses, binds and runs `sql` unnamed in one round trip, with
    /// `values` sent as `types`, and reads every row.
    pub async fn query_unnamed(
        &mut self,
        sql: &str,
        types: &[Type],
        values: &[impl ToSql],
    ) -> Result<(), WireError> {
        encode(&mut self.out, |buf| {
            frontend::parse("", sql, types.iter().map(Type::oid), buf)
        })?;
        encode_bind(&mut self.out, "", types, values)?;
        encode(&mut self.out, |buf| {
            frontend::describe(b'S', "", buf)?;
            execute(buf)
        })?;
        self.round_trip(false).await.map(drop)
    }

    /// Runs SQL without parameters by the simple protocol (BEGIN, COMMIT,
    /// a recycle check) and returns the first row's first value, as text.
    pub async fn simple(&mut self, sql: &str) -> Result<Option<String>, WireError> {
        encode(&mut self.out, |buf| frontend::query(sql, buf))?;
        self.round_trip(true).await
    }

    /// Forgets the named statements this session prepared (the server
    /// dropped them: DISCARD ALL); the next call prepares its own again.
    pub fn forget_statements(&mut self) {
        self.prepared.clear();
    }

    /// Whether the session is known to be unusable, checked without
    /// waiting: a broken call, the server's end of the socket closed, or a
    /// fatal error sent while it sat idle (a server shutting down). A
    /// notice or parameter change that arrived meanwhile is read and
    /// dropped. It costs at most one non-blocking read, and nothing when
    /// the runtime has heard nothing from the socket since the last read
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
        loop {
            self.input.reserve(1024);
            match tokio_util::io::poll_read_buf(Pin::new(stream.as_mut()), &mut cx, &mut self.input)
            {
                Poll::Pending => return false,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.broken = true;
                    return true;
                }
                Poll::Ready(Ok(_)) => loop {
                    match next_message(&mut self.input, false) {
                        Ok(None) => break,
                        Ok(Some(Taken::Parsed(_, message))) if may_come_any_time(&message) => {}
                        // A fatal error, or what no idle session is sent.
                        Ok(Some(_)) | Err(_) => {
                            self.broken = true;
                            return true;
                        }
                    }
                },
            }
        }
    }

    /// Closes the session as an application's close does: Terminate, then
    /// the socket (TLS close_notify first). Not bounded: the caller puts
    /// its timeout around it.
    pub async fn close(mut self) {
        if let Some(stream) = self.stream.take() {
            farewell(stream).await;
        }
    }

    /// Sends what was encoded and reads until ReadyForQuery; with `first`,
    /// returns the first row's first value as text (simple protocol).
    async fn round_trip(&mut self, first: bool) -> Answer {
        let Some(stream) = self.stream.as_mut() else {
            self.out.clear();
            return Err(WireError::Closed);
        };
        if self.broken {
            self.out.clear();
            return Err(WireError::Closed);
        }
        // Broken until the answer has been read to its end: a call
        // abandoned midway leaves the session out of step.
        self.broken = true;
        let sent = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        }
        .await;
        self.out.clear();
        sent.map_err(WireError::Io)?;
        let answer = read_answer(stream.as_mut(), &mut self.input, first).await;
        self.broken = matches!(
            answer,
            Err(WireError::Io(_) | WireError::Closed | WireError::Protocol(_))
        ) || matches!(&answer, Err(WireError::Db(e)) if e.severity_is_fatal());
        answer
    }
}

impl Drop for Wire {
    /// A session dropped without [`Wire::close`] (its request abandoned, or
    /// its pool gone) still says goodbye, as a dropped tokio-postgres client
    /// does: Terminate from a task of its own, bounded by [`FAREWELL`].
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(FAREWELL, farewell(stream)).await;
            });
        }
    }
}

async fn farewell(mut stream: Box<dyn Io>) {
    let mut buf = BytesMut::with_capacity(5);
    frontend::terminate(&mut buf);
    if stream.write_all(&buf).await.is_ok() {
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    }
}

/// Adds messages to `out`; on failure, drops everything of the call.
fn encode(
    out: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> io::Result<()>,
) -> Result<(), WireError> {
    write(out).map_err(|e| {
        out.clear();
        WireError::Encode(e.to_string())
    })
}

/// Execute the unnamed portal to its end, then Sync.
fn execute(buf: &mut BytesMut) -> io::Result<()> {
    frontend::execute("", 0, buf)?;
    frontend::sync(buf);
    Ok(())
}

/// Bind of `values` as `types` to the unnamed portal, every parameter and
/// every result column in binary, as tokio-postgres binds.
fn encode_bind(
    out: &mut BytesMut,
    statement: &str,
    types: &[Type],
    values: &[impl ToSql],
) -> Result<(), WireError> {
    if types.len() != values.len() {
        out.clear();
        return Err(WireError::Encode(format!(
            "expected {} parameters but got {}",
            types.len(),
            values.len()
        )));
    }
    let mut failed = None;
    let bound = frontend::bind(
        "",
        statement,
        types.iter().map(|_| 1),
        values.iter().zip(types).enumerate(),
        |(i, (value, ty)), buf| match value.to_sql_checked(ty, buf) {
            Ok(tokio_postgres::types::IsNull::No) => Ok(IsNull::No),
            Ok(tokio_postgres::types::IsNull::Yes) => Ok(IsNull::Yes),
            Err(e) => {
                failed = Some(format!("parameter ${}: {e}", i + 1));
                Err(e)
            }
        },
        Some(1),
        out,
    );
    bound.map_err(|e| {
        out.clear();
        WireError::Encode(failed.unwrap_or_else(|| match e {
            frontend::BindError::Conversion(e) => e.to_string(),
            frontend::BindError::Serialization(e) => e.to_string(),
        }))
    })
}

/// A whole message taken off the read buffer.
enum Taken {
    /// One whose content no call reads (see [`stepped_over`]): its type.
    Skipped(u8),
    /// Parsed by postgres-protocol, with its type.
    Parsed(u8, Message),
}

/// The next whole message in `input`, taken off it; None until all of it
/// has arrived. `read_rows`: whether a row's content is wanted. A frame
/// that cannot be a message (a length below 4; among those parsed, a body
/// its type cannot hold or an unknown type) is an error: the next
/// message's start is lost with it.
fn next_message(input: &mut BytesMut, read_rows: bool) -> Result<Option<Taken>, WireError> {
    // The header first: the parser reserves room for a whole message at
    // once, so a length not yet arrived (or a corrupt one: up to 2 GiB)
    // is left to the reads to fill.
    let Some(header) = Header::parse(input).map_err(malformed)? else {
        return Ok(None);
    };
    // The length counts itself but not the type byte.
    let len = header.len() as usize + 1;
    if input.len() < len {
        return Ok(None);
    }
    let tag = header.tag();
    if stepped_over(tag, read_rows) {
        input.advance(len);
        return Ok(Some(Taken::Skipped(tag)));
    }
    let message = Message::parse(input).map_err(malformed)?;
    Ok(message.map(|m| Taken::Parsed(tag, m)))
}

/// Whether a message of type `tag` is stepped over by its length rather
/// than parsed: those of a statement's answer whose content no call reads
/// (completions, descriptions, rows unless wanted, the command tag,
/// ReadyForQuery). A pooled `SELECT 1` is answered with four of them on
/// every request, and `Message::parse` would split each off the buffer as
/// a shared `Bytes` (no copy, but reference counts taken and dropped, and
/// its body read): several times what stepping over costs, on the hottest
/// path. Everything else (errors, notices, a wanted row, anything
/// unexpected) is parsed.
fn stepped_over(tag: u8, read_rows: bool) -> bool {
    match tag {
        backend::DATA_ROW_TAG => !read_rows,
        backend::PARSE_COMPLETE_TAG
        | backend::BIND_COMPLETE_TAG
        | backend::CLOSE_COMPLETE_TAG
        | backend::NO_DATA_TAG
        | backend::PARAMETER_DESCRIPTION_TAG
        | backend::ROW_DESCRIPTION_TAG
        | backend::COMMAND_COMPLETE_TAG
        | backend::EMPTY_QUERY_RESPONSE_TAG
        | backend::PORTAL_SUSPENDED_TAG
        | backend::READY_FOR_QUERY_TAG => true,
        _ => false,
    }
}

/// What the server may send whatever the session is doing: a notice, a
/// parameter change, a notification. Read and dropped.
fn may_come_any_time(message: &Message) -> bool {
    matches!(
        message,
        Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_)
    )
}

fn malformed(e: io::Error) -> WireError {
    WireError::Protocol(format!("error parsing response from server: {e}"))
}

fn unexpected(what: &str) -> WireError {
    WireError::Protocol(format!("unexpected message from server: {what}"))
}

/// Reads messages until ReadyForQuery. Rows are read and dropped (counted
/// by nobody: an application reading its result pays for reading them).
/// The first error is kept and returned once the server is ready again; a
/// fatal one (the server closing the session) is returned even without.
async fn read_answer(stream: &mut dyn Io, input: &mut BytesMut, first: bool) -> Answer {
    let mut error: Option<DbError> = None;
    let mut value: Option<String> = None;
    loop {
        // A parsed message is dropped before the next read: the buffer it
        // was split from is then the only owner of its memory again, and
        // `reserve` reuses it instead of allocating.
        while let Some(taken) = next_message(input, first && value.is_none())? {
            let (tag, message) = match taken {
                Taken::Skipped(backend::READY_FOR_QUERY_TAG) => {
                    return match error {
                        Some(e) => Err(WireError::Db(Box::new(e))),
                        None => Ok(value),
                    };
                }
                Taken::Skipped(_) => continue,
                Taken::Parsed(tag, message) => (tag, message),
            };
            match message {
                // Parsed only while the first value is wanted.
                Message::DataRow(row) => value = first_text(&row)?,
                Message::ErrorResponse(body) => {
                    if error.is_none() {
                        error = Some(DbError::parse(&body)?);
                    }
                }
                message if may_come_any_time(&message) => {}
                Message::CopyInResponse(_) | Message::CopyOutResponse(_) => {
                    return Err(unexpected("COPY is not supported"));
                }
                _ => return Err(unexpected(&format!("type {:?}", char::from(tag)))),
            }
        }
        input.reserve(8192);
        let read = std::future::poll_fn(|cx| {
            tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, input)
        })
        .await;
        let failure = match read {
            Ok(0) => WireError::Closed,
            Ok(_) => continue,
            Err(e) => WireError::Io(e),
        };
        // A server closing the session says why first: that is the error.
        return Err(match error {
            Some(e) if e.severity_is_fatal() => WireError::Db(Box::new(e)),
            _ => failure,
        });
    }
}

/// The first column of a row, as text (simple-protocol rows are text).
fn first_text(row: &DataRowBody) -> Result<Option<String>, WireError> {
    let column = row.ranges().next().map_err(malformed)?.flatten();
    Ok(column.map(|range| String::from_utf8_lossy(&row.buffer()[range]).into_owned()))
}

impl DbError {
    /// The severity (not localized when the server sends it), SQLSTATE and
    /// message of an ErrorResponse.
    fn parse(body: &ErrorResponseBody) -> Result<DbError, WireError> {
        let mut e = DbError {
            severity: String::new(),
            code: String::new(),
            message: String::new(),
        };
        let mut localized = String::new();
        let mut fields = body.fields();
        while let Some(field) = fields.next().map_err(malformed)? {
            let value = String::from_utf8_lossy(field.value_bytes());
            match field.type_() {
                b'V' => e.severity = value.into_owned(),
                b'S' => localized = value.into_owned(),
                b'C' => e.code = value.into_owned(),
                b'M' => e.message = value.into_owned(),
                _ => {}
            }
        }
        if e.severity.is_empty() {
            e.severity = localized;
        }
        Ok(e)
    }

    fn severity_is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }
}

#[cfg(test)]
mod tests;
