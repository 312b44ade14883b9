//! The PostgreSQL wire as the proxy reads it: the untagged messages that
//! open a connection (SSLRequest, GSSENCRequest, CancelRequest,
//! StartupMessage), then tagged frames moved from one side to the other,
//! framed by postgres-protocol's header parser. A frame the proxy need not
//! read is passed on as its bytes arrive, however long (a huge row or a
//! COPY is never held whole); one it reads (ReadyForQuery, an error, an
//! authentication request) waits until whole, up to [`MAX_LOOK_BYTES`].
//! Nothing read is trusted: a frame that cannot be a message is an error
//! the session ends on, never a panic.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use postgres_protocol::message::backend::Header;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The request codes of the untagged first messages.
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
/// Protocol 3.x: major version 3 in the high 16 bits.
const PROTOCOL_3: i32 = 3 << 16;

/// The longest first message PostgreSQL accepts (MAX_STARTUP_PACKET_LENGTH).
const MAX_STARTUP_BYTES: usize = 10_000;

/// The longest frame the proxy waits for to read whole; a longer one of a
/// kind it reads is malformed (none of them comes near it).
pub const MAX_LOOK_BYTES: usize = 1 << 20;

pub const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// What cannot be a PostgreSQL message.
#[derive(Debug)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connection's first message.
#[derive(Debug, PartialEq, Eq)]
pub enum First {
    Ssl,
    GssEnc,
    /// The 16 bytes to forward as they are: the proxy is one connection to
    /// the server per application connection, so the backend key the
    /// application holds is the server's own.
    Cancel(Vec<u8>),
    /// The whole StartupMessage, length included, to forward as it is.
    Startup(Vec<u8>),
}

/// Reads one untagged first message. An I/O error (the peer closed) is the
/// outer error; a message that is not one is the inner.
pub async fn read_first<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Result<First, Malformed>> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let code = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let Some(len) = usize::try_from(len)
        .ok()
        .filter(|l| (8..=MAX_STARTUP_BYTES).contains(l))
    else {
        return Ok(Err(Malformed(format!(
            "a first message of length {len}: not a PostgreSQL client (or TLS sent directly, \
             which the proxy does not accept)"
        ))));
    };
    let mut whole = vec![0u8; len];
    whole[..8].copy_from_slice(&head);
    r.read_exact(&mut whole[8..]).await?;
    Ok(match (code, len) {
        (SSL_REQUEST, 8) => Ok(First::Ssl),
        (GSSENC_REQUEST, 8) => Ok(First::GssEnc),
        (CANCEL_REQUEST, 16) => Ok(First::Cancel(whole)),
        (code, _) if code >> 16 == PROTOCOL_3 >> 16 => Ok(First::Startup(whole)),
        (code, len) => Err(Malformed(format!(
            "a first message with code {code} and length {len}"
        ))),
    })
}

/// What the proxy does with a frame it looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Pass it on as it is.
    Pass,
    /// Its replacement is already in the output.
    Replaced,
    /// Stop relaying: the session ends after what is already in the output.
    Stop,
}

/// How much of a frame the proxy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Its tag only: it is passed on as its bytes arrive.
    Tag,
    /// Its whole body.
    Body,
}

/// One direction of a relayed session: where it stands in the byte stream.
#[derive(Debug, Default)]
pub struct Frames {
    /// Bytes of the current frame still to pass on unread.
    skip: usize,
}

impl Frames {
    /// Moves every whole frame (and what has arrived of a frame passed
    /// unread) from `input` to `out`, calling `look(tag, body, out)` on each
    /// frame: `body` is None for a frame `need` says to pass unread, and
    /// such a frame's `Flow` may only be `Pass` or `Stop`. What remains in
    /// `input` is the start of a frame still arriving. Returns false when
    /// `look` said stop.
    pub fn relay(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        need: impl Fn(u8) -> Need,
        mut look: impl FnMut(u8, Option<&[u8]>, &mut BytesMut) -> Result<Flow, Malformed>,
    ) -> Result<bool, Malformed> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(input.len());
                if n == 0 {
                    return Ok(true);
                }
                out.extend_from_slice(&input[..n]);
                input.advance(n);
                self.skip -= n;
                continue;
            }
            let header = match Header::parse(input) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(true),
                Err(e) => return Err(Malformed(format!("a malformed frame: {e}"))),
            };
            let tag = header.tag();
            let whole = 1 + header.len() as usize;
            if need(tag) == Need::Body {
                if whole > MAX_LOOK_BYTES {
                    return Err(Malformed(format!(
                        "a '{}' message of {whole} bytes",
                        tag.escape_ascii()
                    )));
                }
                if input.len() < whole {
                    input.reserve(whole - input.len());
                    return Ok(true);
                }
                let frame = input.split_to(whole);
                match look(tag, Some(&frame[5..]), out)? {
                    Flow::Pass => out.extend_from_slice(&frame),
                    Flow::Replaced => {}
                    Flow::Stop => return Ok(false),
                }
            } else {
                match look(tag, None, out)? {
                    Flow::Stop => return Ok(false),
                    Flow::Pass | Flow::Replaced => {}
                }
                self.skip = whole;
            }
        }
    }
}

/// An AuthenticationSASL body's mechanisms without SCRAM-SHA-256-PLUS, as
/// a whole message; None when the body is another request (the caller
/// passes it on). Channel binding ties the client's proof to the TLS
/// session it sees, the proxy's, which the server cannot check.
pub fn without_channel_binding(body: &[u8]) -> Result<Option<(BytesMut, bool)>, Malformed> {
    let Some(code) = body.get(..4) else {
        return Err(Malformed(
            "an authentication request without its code".into(),
        ));
    };
    if i32::from_be_bytes([code[0], code[1], code[2], code[3]]) != 10 {
        return Ok(None);
    }
    let mut kept = Vec::new();
    let mut dropped = false;
    for name in body[4..].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name == SCRAM_PLUS.as_bytes() {
            dropped = true;
        } else {
            kept.push(name);
        }
    }
    let mut msg = BytesMut::new();
    let len = 4 + 4 + kept.iter().map(|n| n.len() + 1).sum::<usize>() + 1;
    msg.put_u8(b'R');
    msg.put_i32(len as i32);
    msg.put_i32(10);
    for name in kept {
        msg.put_slice(name);
        msg.put_u8(0);
    }
    msg.put_u8(0);
    Ok(Some((msg, dropped)))
}

/// The GS2 channel-binding flag of a SASLInitialResponse body: `y` (the
/// client could bind but was not offered it), `n` or `p`.
pub fn gs2_flag(body: &[u8]) -> Option<u8> {
    let end = body.iter().position(|b| *b == 0)?;
    let rest = body.get(end + 1..)?;
    let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    (len > 0).then(|| rest.get(4).copied()).flatten()
}

/// A FATAL ErrorResponse from the proxy itself.
pub fn fatal(sqlstate: &str, message: &str) -> BytesMut {
    let mut fields = BytesMut::new();
    for (kind, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        fields.put_u8(kind);
        fields.put_slice(value.as_bytes());
        fields.put_u8(0);
    }
    fields.put_u8(0);
    let mut msg = BytesMut::with_capacity(fields.len() + 5);
    msg.put_u8(b'E');
    msg.put_i32(fields.len() as i32 + 4);
    msg.put_slice(&fields);
    msg
}

/// An ErrorResponse body's SQLSTATE and message.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    (code, message)
}

/// A ParameterStatus body's name and value.
pub fn parameter(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = body.split(|b| *b == 0);
    Some((parts.next()?, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_pass_whole_split_and_huge_alike() {
        let mut stream = frame(b'D', &vec![7u8; 100_000]);
        stream.extend(frame(b'Z', b"I"));
        let mut frames = Frames::default();
        let mut out = BytesMut::new();
        let mut seen = Vec::new();
        let mut input = BytesMut::new();
        // Fed three bytes at a time: headers and bodies split anywhere.
        for chunk in stream.chunks(3) {
            input.extend_from_slice(chunk);
            let go = frames
                .relay(
                    &mut input,
                    &mut out,
                    |t| if t == b'Z' { Need::Body } else { Need::Tag },
                    |t, body, _| {
                        seen.push((t, body.map(<[u8]>::to_vec)));
                        Ok(Flow::Pass)
                    },
                )
                .unwrap();
            assert!(go);
        }
        assert_eq!(&out[..], &stream[..]);
        assert_eq!(seen, [(b'D', None), (b'Z', Some(b"I".to_vec()))]);
    }

    #[test]
    fn a_length_below_four_is_malformed_not_a_panic() {
        let mut input = BytesMut::from(&[b'Q', 0, 0, 0, 2, 0][..]);
        let r = Frames::default().relay(
            &mut input,
            &mut BytesMut::new(),
            |_| Need::Tag,
            |_, _, _| Ok(Flow::Pass),
        );
        assert!(r.is_err());
        let mut huge = BytesMut::from(&frame(b'R', &[])[..5]);
        huge[1..5].copy_from_slice(&(i32::MAX).to_be_bytes());
        let r = Frames::default().relay(
            &mut huge,
            &mut BytesMut::new(),
            |_| Need::Body,
            |_, _, _| Ok(Flow::Pass),
        );
        assert!(r.is_err());
    }

    #[test]
    fn channel_binding_is_taken_off_the_mechanisms() {
        let body = b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
        let (msg, dropped) = without_channel_binding(body).unwrap().unwrap();
        assert!(dropped);
        assert_eq!(&msg[..], &frame(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0")[..]);
        // Another request (SASLContinue) is left alone.
        assert!(without_channel_binding(b"\0\0\0\x0bdata")
            .unwrap()
            .is_none());
        assert!(without_channel_binding(b"\0\0").is_err());
    }

    #[test]
    fn the_gs2_flag_is_read_from_the_initial_response() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&8i32.to_be_bytes());
        body.extend_from_slice(b"y,,n=,r=");
        assert_eq!(gs2_flag(&body), Some(b'y'));
        assert_eq!(gs2_flag(b"SCRAM"), None);
        assert_eq!(gs2_flag(b"SCRAM\0\xff\xff\xff\xff"), None);
    }

    #[test]
    fn error_fields_are_read_and_a_truncated_body_is_not_a_panic() {
        let mut body = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0".to_vec();
        assert_eq!(
            error_fields(&body),
            ("28P01".into(), "password authentication failed".into())
        );
        body.truncate(11);
        assert_eq!(error_fields(&body).0, "28P");
        let f = fatal("08006", "no server");
        assert_eq!(f[0], b'E');
        assert_eq!(error_fields(&f[5..]), ("08006".into(), "no server".into()));
    }

    #[tokio::test]
    async fn first_messages_are_told_apart() {
        let ssl = [0, 0, 0, 8, 4, 210, 22, 47];
        assert_eq!(
            read_first(&mut &ssl[..]).await.unwrap().unwrap(),
            First::Ssl
        );
        let mut startup = vec![0, 0, 0, 9, 0, 3, 0, 0, 0];
        assert!(matches!(
            read_first(&mut &startup[..]).await.unwrap().unwrap(),
            First::Startup(_)
        ));
        startup[3] = 200;
        // Says 200 bytes, has 9: the peer closed.
        assert!(read_first(&mut &startup[..]).await.is_err());
        let tls_hello = [0x16, 3, 1, 2, 0, 1, 0, 1];
        assert!(read_first(&mut &tls_hello[..]).await.unwrap().is_err());
    }
}
