//! The identity proof between a client and the daemon of a state dir: before a client sends the
//! token to the address `daemon.json` records, the program there must prove it holds the token
//! (`GET /api/identity?nonce=` answers the HMAC of the nonce under it). After a `kill -9`,
//! `daemon.json` stays and another local user may have bound its port.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of every identity proof's message, so a proof can never stand for another use of the
/// token.
const IDENTITY_DOMAIN: &[u8] = b"dagger-sandbox identity v1\0";

/// Shortest and longest nonce (hex characters) `GET /api/identity` accepts.
pub const NONCE_HEX_LEN: std::ops::RangeInclusive<usize> = 32..=128;

fn identity_mac(token: &str, nonce: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(IDENTITY_DOMAIN);
    mac.update(nonce.as_bytes());
    mac
}

/// The proof that a daemon holds `token`: hex HMAC-SHA256 of the client's `nonce` under it.
pub fn identity_proof(token: &str, nonce: &str) -> String {
    hex::encode(identity_mac(token, nonce).finalize().into_bytes())
}

/// Whether `proof` (hex) is the identity proof of `token` for `nonce`, compared in constant time.
pub fn proof_matches(token: &str, nonce: &str, proof: &str) -> bool {
    hex::decode(proof).is_ok_and(|bytes| identity_mac(token, nonce).verify_slice(&bytes).is_ok())
}

/// A fresh random nonce (32 bytes, hex) for one identity check.
pub fn new_nonce() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_proof_holds_only_for_its_token_and_nonce() {
        let nonce = new_nonce();
        assert!(NONCE_HEX_LEN.contains(&nonce.len()));
        let proof = identity_proof("tok", &nonce);
        assert!(proof_matches("tok", &nonce, &proof));
        assert!(!proof_matches("tok2", &nonce, &proof));
        assert!(!proof_matches("tok", &new_nonce(), &proof));
        assert!(!proof_matches("tok", &nonce, "not hex"));
        assert!(!proof_matches("tok", &nonce, &proof[..10]));
    }
}
