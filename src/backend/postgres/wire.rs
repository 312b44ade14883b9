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

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_postgres::types::{ToSql, Type};

/// The stream a session runs on: TLS or not, across the link emulator or
/// not.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

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
    /// The server sent something this session does not expect (COPY, or
    /// an unknown message): the session is given up.
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
            WireError::Protocol(m) => write!(f, "unexpected message from server: {m}"),
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

    /// Whether the session is known to be unusable, checked without
    /// waiting: a broken call, the server's end of the socket closed, or a
    /// fatal error sent while it sat idle (a server shutting down). A
    /// notice or parameter change that arrived meanwhile is read and
    /// dropped. It costs at most one non-blocking read.
    pub fn is_closed(&mut self) -> bool {
        if self.broken {
            return true;
        }
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
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
                Poll::Ready(Ok(_)) => {
                    while let Some((tag, len)) = frame(&self.input) {
                        if !matches!(tag, b'N' | b'S' | b'A') {
                            self.broken = true;
                            return true;
                        }
                        self.input.advance(len);
                    }
                }
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

impl DbError {
    fn severity_is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
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

/// The next complete message in `input`: its tag and whole length.
fn frame(input: &[u8]) -> Option<(u8, usize)> {
    if input.len() < 5 {
        return None;
    }
    let len = 1 + u32::from_be_bytes([input[1], input[2], input[3], input[4]]) as usize;
    (input.len() >= len).then_some((input[0], len))
}

/// Reads messages until ReadyForQuery. Rows are read and dropped (counted
/// by nobody: an application reading its result pays for reading them).
/// The first error is kept and returned once the server is ready again; a
/// fatal one (the server closing the session) is returned even without.
async fn read_answer(stream: &mut dyn Io, input: &mut BytesMut, first: bool) -> Answer {
    let mut error: Option<DbError> = None;
    let mut value: Option<String> = None;
    loop {
        while let Some((tag, len)) = frame(input) {
            let body = &input[5..len];
            match tag {
                b'Z' => {
                    input.advance(len);
                    return match error {
                        Some(e) => Err(WireError::Db(Box::new(e))),
                        None => Ok(value),
                    };
                }
                b'D' if first && value.is_none() => value = first_text(body),
                b'E' if error.is_none() => error = Some(parse_error(body)),
                // Parse, bind, close complete; parameter and row
                // descriptions; no data; rows; command complete; empty
                // query; portal suspended; and what may come at any time:
                // a notice, a parameter change, a notification.
                b'1' | b'2' | b'3' | b't' | b'T' | b'n' | b'D' | b'C' | b'I' | b's' | b'E'
                | b'N' | b'S' | b'A' => {}
                b'G' | b'H' | b'W' => {
                    return Err(WireError::Protocol("COPY is not supported".into()));
                }
                other => {
                    return Err(WireError::Protocol(format!(
                        "message type {:?}",
                        char::from(other)
                    )));
                }
            }
            input.advance(len);
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

/// The first column of a DataRow, as text (simple-protocol rows are text).
fn first_text(body: &[u8]) -> Option<String> {
    let columns = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    if columns == 0 {
        return None;
    }
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let text = body.get(6..6 + len)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

/// The severity (not localized when the server sends it), SQLSTATE and
/// message of an ErrorResponse.
fn parse_error(body: &[u8]) -> DbError {
    let mut e = DbError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    let mut localized = String::new();
    for field in body.split(|&b| b == 0) {
        let Some((&kind, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'V' => e.severity = value,
            b'S' => localized = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            _ => {}
        }
    }
    if e.severity.is_empty() {
        e.severity = localized;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(fields: &[(u8, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in fields {
            body.push(*kind);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        body
    }

    #[test]
    fn an_error_keeps_its_unlocalized_severity_code_and_message() {
        let body = error_body(&[
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "57P01"),
            (b'M', "terminating connection due to administrator command"),
            (b'F', "postgres.c"),
        ]);
        let e = parse_error(&body);
        assert_eq!(e.code, "57P01");
        assert!(e.severity_is_fatal());
        assert_eq!(
            WireError::Db(Box::new(e)).to_string(),
            "FATAL (57P01): terminating connection due to administrator command"
        );
        let localized = parse_error(&error_body(&[(b'S', "FEHLER"), (b'C', "42P01")]));
        assert_eq!(localized.severity, "FEHLER");
    }

    #[test]
    fn frames_need_their_whole_length() {
        let mut msg = vec![b'Z', 0, 0, 0, 5, b'I'];
        assert_eq!(frame(&msg), Some((b'Z', 6)));
        msg.pop();
        assert_eq!(frame(&msg), None);
        assert_eq!(frame(&msg[..3]), None);
    }

    #[test]
    fn a_rows_first_value_is_read_as_text() {
        let body = [0, 2, 0, 0, 0, 2, b'o', b'n', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(first_text(&body).as_deref(), Some("on"));
        let null = [0, 1, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(first_text(&null), None);
        assert_eq!(first_text(&[0, 0]), None);
    }
}
