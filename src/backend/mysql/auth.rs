//! The answers to the authentication plugins' challenges: what the
//! client proves it knows the password with, never the password itself
//! (except on TLS, where `connect.rs` sends it as the mysql client does).

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// mysql_native_password: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
/// Empty for an empty password.
pub fn scramble_native(password: &str, nonce: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// caching_sha2_password:
/// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce).
/// Empty for an empty password.
pub fn scramble_sha2(password: &str, nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password.as_bytes());
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The server's check: SHA1(nonce + stored) XOR the answer is a value
    /// whose SHA1 is the stored hash (SHA1(SHA1(password))).
    #[test]
    fn native_answer_passes_the_servers_check() {
        use sha1::Digest as _;
        let nonce = b"abcdefghijklmnopqrst";
        let answer = scramble_native("secret", nonce);
        let stored = Sha1::digest(Sha1::digest(b"secret"));
        let mut h = Sha1::new();
        h.update(nonce);
        h.update(stored);
        let mix = h.finalize();
        let stage1: Vec<u8> = answer.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(hex(&Sha1::digest(&stage1)), hex(&stored));
        assert!(scramble_native("", nonce).is_empty());
    }

    #[test]
    fn sha2_answer_passes_the_servers_check() {
        let nonce = b"abcdefghijklmnopqrst";
        let answer = scramble_sha2("secret", nonce);
        let stored = Sha256::digest(Sha256::digest(b"secret"));
        let mut h = Sha256::new();
        h.update(stored);
        h.update(nonce);
        let mix = h.finalize();
        let stage1: Vec<u8> = answer.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(hex(&Sha256::digest(&stage1)), hex(&stored));
        assert_eq!(answer.len(), 32);
    }
}
