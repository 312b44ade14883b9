//! [`Wire`] against a scripted server on an in-memory stream
//! (`tokio::io::duplex`): the server's end reads the frontend messages the
//! session sends and answers with backend messages written byte by byte
//! here, as PostgreSQL writes them (postgres-protocol encodes only the
//! frontend's). Round trips, errors, a closed peer, malformed frames and a
//! call given up midway, each checked without a server.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::oneshot;

use super::*;

// ---- backend messages, as a server writes them ----

fn message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

fn ready(out: &mut Vec<u8>) {
    message(out, b'Z', b"I");
}

fn error(out: &mut Vec<u8>, severity: &str, code: &str, text: &str) {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(out, b'E', &body);
}

fn data_row(out: &mut Vec<u8>, columns: &[Option<&[u8]>]) {
    let mut body = (columns.len() as u16).to_be_bytes().to_vec();
    for column in columns {
        match column {
            Some(value) => {
                body.extend_from_slice(&(value.len() as i32).to_be_bytes());
                body.extend_from_slice(value);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    message(out, b'D', &body);
}

/// One int4 column named `?column?`, as `SELECT 1` describes its row.
fn row_description(out: &mut Vec<u8>) {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(b"?column?\0");
    body.extend_from_slice(&0u32.to_be_bytes()); // table
    body.extend_from_slice(&0i16.to_be_bytes()); // column
    body.extend_from_slice(&23u32.to_be_bytes()); // int4
    body.extend_from_slice(&4i16.to_be_bytes()); // size
    body.extend_from_slice(&(-1i32).to_be_bytes()); // modifier
    body.extend_from_slice(&0i16.to_be_bytes()); // text
    message(out, b'T', &body);
}

/// What may come at any time: a notice and a parameter change.
fn asides(out: &mut Vec<u8>) {
    message(out, b'N', b"SNOTICE\0VNOTICE\0C00000\0Mhello\0\0");
    message(out, b'S', b"application_name\0poolbench\0");
}

// ---- the server's end ----

/// A frontend message the server read: its type and body.
struct Received {
    tag: u8,
    body: Vec<u8>,
}

impl Received {
    /// The body's first NUL-terminated strings: Parse's statement name
    /// and SQL, Bind's portal and statement, Query's SQL.
    fn text(&self, i: usize) -> &str {
        let field = self.body.split(|&b| b == 0).nth(i).unwrap_or_default();
        std::str::from_utf8(field).unwrap_or_default()
    }
}

struct Server(DuplexStream);

impl Server {
    /// The next frontend message; None once the session's end is closed.
    async fn receive(&mut self) -> Option<Received> {
        let tag = self.0.read_u8().await.ok()?;
        let len = self.0.read_u32().await.ok()? as usize;
        let mut body = vec![0; len - 4];
        self.0.read_exact(&mut body).await.ok()?;
        Some(Received { tag, body })
    }

    /// Messages up to one the server answers at once: Sync, Query or
    /// Terminate (fewer if the session's end closes first).
    async fn call(&mut self) -> Vec<Received> {
        let mut call = Vec::new();
        while let Some(received) = self.receive().await {
            let last = matches!(received.tag, b'S' | b'Q' | b'X');
            call.push(received);
            if last {
                break;
            }
        }
        call
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.unwrap();
        self.0.flush().await.unwrap();
    }
}

/// A server's answer to `call`, as PostgreSQL answers: a statement reading
/// a table named `missing` fails, and the rest of its call up to Sync is
/// skipped; every row is `1` (binary for the extended protocol, `on` as
/// text for the simple one, like `SHOW ssl`).
fn answer(call: &[Received]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut failed = false;
    for received in call {
        if failed && received.tag != b'S' {
            continue;
        }
        match received.tag {
            b'P' if received.text(1).contains("missing") => {
                error(
                    &mut out,
                    "ERROR",
                    "42P01",
                    "relation \"missing\" does not exist",
                );
                failed = true;
            }
            b'P' => message(&mut out, b'1', b""),
            b'D' => {
                message(&mut out, b't', &[0, 0]);
                row_description(&mut out);
            }
            b'B' => message(&mut out, b'2', b""),
            b'E' => {
                data_row(&mut out, &[Some(&1i32.to_be_bytes())]);
                message(&mut out, b'C', b"SELECT 1\0");
            }
            b'S' => {
                asides(&mut out);
                ready(&mut out);
            }
            b'Q' => {
                row_description(&mut out);
                data_row(&mut out, &[Some(b"on")]);
                message(&mut out, b'C', b"SHOW\0");
                ready(&mut out);
            }
            _ => {}
        }
    }
    out
}

/// Serves until Terminate or the session's end closing; returns every
/// message received.
async fn serve(mut server: Server) -> Vec<Received> {
    let mut received = Vec::new();
    loop {
        let call = server.call().await;
        let reply = answer(&call);
        let ended = call.last().is_none_or(|r| r.tag == b'X');
        received.extend(call);
        if ended {
            return received;
        }
        server.send(&reply).await;
    }
}

/// A session and the server's end of its stream, which holds at most
/// `buffer` bytes each way.
fn pair(buffer: usize) -> (Wire, Server) {
    let (client, server) = tokio::io::duplex(buffer);
    (Wire::new(Box::new(client)), Server(server))
}

const NO_VALUES: &[i32] = &[];

// ---- the tests ----

#[tokio::test]
async fn statements_round_trip_and_a_named_one_is_prepared_once() {
    // 7 bytes at a time each way: messages arrive across several reads.
    let (mut wire, server) = pair(7);
    let server = tokio::spawn(serve(server));
    let types = [Type::INT4];
    wire.query_named("SELECT $1::int4", &types, &[1i32])
        .await
        .unwrap();
    wire.query_named("SELECT $1::int4", &types, &[2i32])
        .await
        .unwrap();
    wire.query_unnamed("SELECT $1::int4", &types, &[3i32])
        .await
        .unwrap();
    assert_eq!(
        wire.simple("SHOW ssl").await.unwrap().as_deref(),
        Some("on")
    );
    assert!(!wire.is_closed());
    wire.close().await;

    let received = server.await.unwrap();
    let tags: String = received.iter().map(|r| char::from(r.tag)).collect();
    // Prepare; bind and execute twice; unnamed; simple; Terminate.
    assert_eq!(tags, "PDSBESBESPBDESQX");
    // Prepared under a name once, then bound by that name twice; the
    // unnamed statement is parsed again and bound unnamed.
    let name = received[0].text(0);
    assert!(name.starts_with('s'), "{name:?}");
    assert_eq!(received[3].text(1), name);
    assert_eq!(received[6].text(1), name);
    assert_eq!(received[9].text(0), "");
    assert_eq!(received[10].text(1), "");
    assert_eq!(received[14].text(0), "SHOW ssl");
    // Each value bound in binary, as the statement's last 4 bytes before
    // the result format.
    let bound = |i: usize| received[i].body[received[i].body.len() - 8..][..4].to_vec();
    assert_eq!(bound(3), 1i32.to_be_bytes());
    assert_eq!(bound(6), 2i32.to_be_bytes());
    assert_eq!(bound(10), 3i32.to_be_bytes());
}

#[tokio::test]
async fn an_error_response_carries_its_sqlstate_and_message_and_the_session_goes_on() {
    let (mut wire, server) = pair(64);
    let server = tokio::spawn(serve(server));
    let err = wire
        .query_named("SELECT * FROM missing", &[], NO_VALUES)
        .await
        .unwrap_err();
    let WireError::Db(db) = &err else {
        panic!("not the server's error: {err}");
    };
    assert_eq!((db.severity.as_str(), db.code.as_str()), ("ERROR", "42P01"));
    assert_eq!(
        err.to_string(),
        "ERROR (42P01): relation \"missing\" does not exist"
    );
    // Read to ReadyForQuery: still in step, and the failed statement is
    // not taken for prepared.
    assert!(!wire.is_closed());
    let err = wire
        .query_named("SELECT * FROM missing", &[], NO_VALUES)
        .await
        .unwrap_err();
    assert!(matches!(err, WireError::Db(_)), "{err}");
    wire.query_named("SELECT 1", &[], NO_VALUES).await.unwrap();
    wire.close().await;
    let tags: String = server
        .await
        .unwrap()
        .iter()
        .map(|r| char::from(r.tag))
        .collect();
    assert_eq!(tags, "PDSPDSPDSBESX");
}

#[tokio::test]
async fn a_fatal_error_is_the_calls_error_and_closes_the_session() {
    let (mut wire, mut server) = pair(256);
    let server = tokio::spawn(async move {
        server.call().await;
        let mut out = Vec::new();
        error(
            &mut out,
            "FATAL",
            "57P01",
            "terminating connection due to administrator command",
        );
        server.send(&out).await;
        // Then the server's end closes, without ReadyForQuery.
    });
    let err = wire.simple("SELECT 1").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "FATAL (57P01): terminating connection due to administrator command"
    );
    assert!(wire.is_closed());
    server.await.unwrap();
}

#[tokio::test]
async fn an_idle_session_skips_asides_and_is_closed_by_a_fatal_error() {
    let (mut wire, mut server) = pair(256);
    let mut out = Vec::new();
    asides(&mut out);
    server.send(&out).await;
    assert!(
        !wire.is_closed(),
        "a notice or a parameter change is no end"
    );
    let mut out = Vec::new();
    error(&mut out, "FATAL", "57P01", "terminating connection");
    // The server's end stays open: the error alone says the session ended.
    server.send(&out).await;
    assert!(wire.is_closed());
    let err = wire.simple("SELECT 1").await.unwrap_err();
    assert!(matches!(err, WireError::Closed), "{err}");
}

#[tokio::test]
async fn a_closed_peer_is_seen_while_idle_and_by_a_call() {
    // Closed while the session sat in a pool: seen without a call.
    let (mut wire, server) = pair(64);
    drop(server);
    assert!(wire.is_closed());
    let err = wire.simple("SELECT 1").await.unwrap_err();
    assert!(matches!(err, WireError::Closed), "{err}");
    assert_eq!(err.to_string(), "connection closed");

    // Closed before a call that did not look: writing fails.
    let (mut wire, server) = pair(64);
    drop(server);
    let err = wire.simple("SELECT 1").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("error communicating with the server: "),
        "{err}"
    );
    assert!(wire.is_closed());

    // Closed in the middle of the answer, half a row sent.
    let (mut wire, mut server) = pair(256);
    let server = tokio::spawn(async move {
        server.call().await;
        let mut out = Vec::new();
        row_description(&mut out);
        data_row(&mut out, &[Some(b"on")]);
        server.send(&out[..out.len() - 3]).await;
    });
    let err = wire.simple("SHOW ssl").await.unwrap_err();
    assert!(matches!(err, WireError::Closed), "{err}");
    assert!(wire.is_closed());
    server.await.unwrap();
}

#[tokio::test]
async fn a_call_given_up_midway_leaves_the_session_closed_and_it_sends_only_terminate() {
    let (mut wire, mut server) = pair(256);
    let (half_sent, half) = oneshot::channel();
    let server = tokio::spawn(async move {
        let prepare = server.call().await;
        server.send(&answer(&prepare)).await;
        let execute = server.call().await;
        let out = answer(&execute);
        // Partway into BindComplete; the rest follows once the caller has
        // given up, into a buffer nobody reads.
        server.send(&out[..3]).await;
        half_sent.send(()).unwrap();
        server.send(&out[3..]).await;
        // What the session sends next.
        server.receive().await.map(|r| r.tag)
    });
    tokio::select! {
        biased;
        _ = half => {}
        answered = wire.query_named("SELECT 1", &[], NO_VALUES) => {
            panic!("answered before the server finished: {answered:?}")
        }
    }
    // What a pool's recycle check asks before handing the session out
    // again (and a lease dropped mid-request detaches it from its pool).
    assert!(wire.is_closed());
    let err = wire.simple("SELECT 1").await.unwrap_err();
    assert!(matches!(err, WireError::Closed), "{err}");
    // Dropped: Terminate from a task of its own, and nothing else.
    drop(wire);
    assert_eq!(server.await.unwrap(), Some(b'X'));

    // Given up while its messages were still being written.
    let (mut wire, _server) = pair(8);
    assert!(wire
        .simple("SELECT 1 -- longer than the stream holds")
        .now_or_never()
        .is_none());
    assert!(wire.is_closed());
}

#[tokio::test]
async fn malformed_or_unexpected_messages_are_connection_errors() {
    let mut unknown = Vec::new();
    message(&mut unknown, b'!', b"");
    let mut unended_status = Vec::new();
    message(&mut unended_status, b'S', b"application_name");
    let mut short_row = Vec::new();
    // Two columns announced, the first running past the message's end.
    message(&mut short_row, b'D', &[0, 2, 0, 0, 0, 9, b'o', b'n']);
    let mut key_data = Vec::new();
    message(&mut key_data, b'K', &[0, 0, 0, 1, 0, 0, 0, 2]);
    let mut copy = Vec::new();
    message(&mut copy, b'H', &[0, 0, 0]);
    let cases = [
        (
            vec![b'Z', 0, 0, 0, 3],
            "error parsing response from server: invalid message length",
        ),
        (
            vec![b'C', 0xff, 0xff, 0xff, 0xff],
            "error parsing response from server: invalid message length",
        ),
        (
            unknown,
            "error parsing response from server: unknown message tag",
        ),
        (unended_status, "error parsing response from server: "),
        (short_row, "error parsing response from server: "),
        (key_data, "unexpected message from server: type 'K'"),
        (
            copy,
            "unexpected message from server: COPY is not supported",
        ),
    ];
    for (reply, words) in cases {
        let (mut wire, mut server) = pair(256);
        let replied = tokio::spawn(async move {
            server.call().await;
            server.send(&reply).await;
            // Kept open: the error comes from the bytes, not an end.
            server
        });
        let err = wire.simple("SELECT 1").await.unwrap_err();
        assert!(matches!(err, WireError::Protocol(_)), "{words}: {err}");
        assert!(err.to_string().starts_with(words), "{words}: {err}");
        assert!(wire.is_closed(), "{words}");
        drop(replied.await.unwrap());
    }
}

// ---- parsing, below the stream ----

/// The one message `bytes` hold, parsed as a session parses it when it
/// wants a row.
fn parsed(bytes: &[u8]) -> Message {
    let mut input = BytesMut::from(bytes);
    let Some(Taken::Parsed(_, message)) = next_message(&mut input, true).unwrap() else {
        panic!("not parsed");
    };
    assert!(input.is_empty());
    message
}

#[test]
fn a_message_is_taken_only_once_whole() {
    // One stepped over, one parsed: each taken only once whole.
    let mut input = BytesMut::new();
    for (whole, tag) in [(&b"Z\0\0\0\x05I"[..], b'Z'), (b"S\0\0\0\x08a\0b\0", b'S')] {
        for &byte in whole {
            assert!(next_message(&mut input, false).unwrap().is_none());
            input.extend_from_slice(&[byte]);
        }
        match next_message(&mut input, false).unwrap() {
            Some(Taken::Skipped(b'Z')) => assert_eq!(tag, b'Z'),
            Some(Taken::Parsed(b'S', Message::ParameterStatus(_))) => assert_eq!(tag, b'S'),
            _ => panic!("{} not taken whole", char::from(tag)),
        }
    }
    assert!(input.is_empty());
}

#[test]
fn a_length_not_yet_arrived_is_not_reserved_at_once() {
    let mut input = BytesMut::from(&[b'E', 0x7f, 0xff, 0xff, 0xff, 0][..]);
    assert!(next_message(&mut input, true).unwrap().is_none());
    assert!(input.capacity() < 1 << 20, "{}", input.capacity());
}

#[test]
fn an_error_keeps_its_unlocalized_severity_code_and_message() {
    let mut bytes = Vec::new();
    message(
        &mut bytes,
        b'E',
        b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0Fpostgres.c\0\0",
    );
    let Message::ErrorResponse(body) = parsed(&bytes) else {
        panic!("not an error");
    };
    let e = DbError::parse(&body).unwrap();
    assert_eq!(e.code, "57P01");
    assert!(e.severity_is_fatal());
    assert_eq!(
        WireError::Db(Box::new(e)).to_string(),
        "FATAL (57P01): terminating connection due to administrator command"
    );
    let mut bytes = Vec::new();
    message(&mut bytes, b'E', b"SFEHLER\0C42P01\0\0");
    let Message::ErrorResponse(body) = parsed(&bytes) else {
        panic!("not an error");
    };
    assert_eq!(DbError::parse(&body).unwrap().severity, "FEHLER");
    // Fields not ended by a NUL.
    let mut bytes = Vec::new();
    message(&mut bytes, b'E', b"SERROR");
    let Message::ErrorResponse(body) = parsed(&bytes) else {
        panic!("not an error");
    };
    assert!(matches!(DbError::parse(&body), Err(WireError::Protocol(_))));
}

#[test]
fn a_rows_first_value_is_read_as_text() {
    let first = |columns: &[Option<&[u8]>]| {
        let mut bytes = Vec::new();
        data_row(&mut bytes, columns);
        let Message::DataRow(row) = parsed(&bytes) else {
            panic!("not a row");
        };
        first_text(&row).unwrap()
    };
    assert_eq!(first(&[Some(b"on"), None]).as_deref(), Some("on"));
    assert_eq!(first(&[None]), None);
    assert_eq!(first(&[]), None);
}

// ---- allocations on the hot path ----

// Every allocation of the unit tests' process goes through this counter,
// per thread, so that a test can count its own thread's.
#[global_allocator]
static COUNTED: Counted = Counted;

struct Counted;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    // Not during the thread's teardown, when its counter is gone.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is handed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[test]
fn a_warm_prepared_statement_round_trip_allocates_nothing() {
    // The server on a thread of its own: only the session's allocations
    // are counted, on this one.
    let (mut wire, server) = pair(4096);
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(serve(server)).len()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let types = [Type::INT4];
        // Prepared, buffers grown and shared.
        for i in 0..3 {
            wire.query_named("SELECT $1::int4", &types, &[i])
                .await
                .unwrap();
        }
        // The runtime's list of wake-ups put off (a yield, or tokio's
        // budget running out when answers keep arriving before the session
        // waits for them) is allocated on first use and then kept: used
        // once here, so that it is not counted against the session.
        tokio::task::yield_now().await;
        let before = allocations();
        for i in 0..100 {
            wire.query_named("SELECT $1::int4", &types, &[i])
                .await
                .unwrap();
        }
        assert_eq!(allocations() - before, 0, "allocations in 100 round trips");
        wire.close().await;
    });
    // Parse, Describe, Sync; Bind, Execute, Sync 103 times; Terminate.
    assert_eq!(server.join().unwrap(), 3 + 3 * 103 + 1);
}
