//! The link emulator against plain TCP peers: delays, the handshake's
//! round trip, the count of round trips, byte order under jitter, and
//! closing both sides when either closes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A connection to a fresh listener (the "server" end, returned too), put
/// behind the link.
async fn linked(link: &Emulator) -> (DuplexStream, Turns, TcpStream, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let started = Instant::now();
    let (client, turns) = link.relay(upstream).await;
    (client, turns, server, started.elapsed())
}

/// Echoes whatever it reads until the client closes.
fn echo(mut server: TcpStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if server.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[tokio::test]
async fn a_round_trip_takes_the_rtt_and_is_counted() {
    let link = Emulator::new(Duration::from_millis(20), Duration::ZERO);
    let (mut client, turns, server, handshake) = linked(&link).await;
    assert!(
        handshake >= Duration::from_millis(20) && handshake < Duration::from_millis(200),
        "the handshake costs one RTT: {handshake:?}"
    );
    assert_eq!(turns.now(), 1, "the handshake is the first round trip");
    echo(server);
    let mut times = Vec::new();
    for i in 0..5u8 {
        let started = Instant::now();
        client.write_all(&[i; 100]).await.unwrap();
        let mut back = [0u8; 100];
        client.read_exact(&mut back).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(back, [i; 100]);
    }
    times.sort();
    assert!(
        times[0] >= Duration::from_millis(20) && times[2] < Duration::from_millis(30),
        "{times:?}"
    );
    assert_eq!(turns.now(), 6, "the handshake and five exchanges");
}

#[tokio::test]
async fn without_delay_bytes_pass_through_and_round_trips_still_count() {
    let link = Emulator::new(Duration::ZERO, Duration::ZERO);
    let (mut client, turns, server, handshake) = linked(&link).await;
    assert!(handshake < Duration::from_millis(100), "{handshake:?}");
    echo(server);
    for _ in 0..3 {
        client.write_all(b"SELECT 1").await.unwrap();
        let mut back = [0u8; 8];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"SELECT 1");
    }
    assert_eq!(turns.now(), 4);
}

#[tokio::test]
async fn jitter_keeps_the_bytes_in_order() {
    let link = Emulator::new(Duration::from_millis(4), Duration::from_millis(2));
    let (client, _turns, server, _) = linked(&link).await;
    echo(server);
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut reader, mut writer) = tokio::io::split(client);
    let sent = data.clone();
    let writing = tokio::spawn(async move {
        // Many writes of odd sizes, with pauses: many flights, each with
        // its own jitter draw.
        let mut at = 0;
        let mut size = 1;
        while at < sent.len() {
            let end = (at + size).min(sent.len());
            writer.write_all(&sent[at..end]).await.unwrap();
            at = end;
            size = size * 7 % 65_521 + 1;
            if size % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        writer
    });
    let mut back = vec![0u8; data.len()];
    reader.read_exact(&mut back).await.unwrap();
    let _writer = writing.await.unwrap();
    assert!(back == data, "the bytes came back reordered or changed");
}

#[tokio::test]
async fn the_client_closing_closes_the_server_side() {
    let link = Emulator::new(Duration::from_millis(2), Duration::ZERO);
    let (mut client, _turns, mut server, _) = linked(&link).await;
    client.write_all(b"bye").await.unwrap();
    drop(client);
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(3))), "{read:?}");
    assert_eq!(got, b"bye", "what was in flight is delivered first");
}

#[tokio::test]
async fn the_server_closing_closes_the_client_side() {
    let link = Emulator::new(Duration::from_millis(2), Duration::ZERO);
    let (mut client, _turns, mut server, _) = linked(&link).await;
    server.write_all(b"FATAL").await.unwrap();
    drop(server);
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(5))), "{read:?}");
    assert_eq!(got, b"FATAL");
    // And the relay let go of the client's end entirely: writing into it
    // now fails.
    let mut failed = false;
    for _ in 0..50 {
        if client.write_all(b"x").await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(failed, "the relay still holds the client's connection");
}

#[test]
fn delays_stay_within_the_jitter() {
    let mut d = Delays::new(
        Duration::from_millis(10),
        Duration::from_millis(2),
        Rng::new(1),
    );
    let draws: Vec<Duration> = (0..1000).map(|_| d.draw()).collect();
    let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
    assert!(*lo >= Duration::from_millis(8) && *hi <= Duration::from_millis(12));
    assert!(*hi - *lo > Duration::from_millis(3), "{lo:?}..{hi:?}");
    let mut none = Delays::new(Duration::from_millis(10), Duration::ZERO, Rng::new(1));
    assert_eq!(none.draw(), Duration::from_millis(10));
}
