//! SASL mechanisms as pure message builders: `PLAIN` (RFC 4616) and the client side of
//! `SCRAM-SHA-256` / `SCRAM-SHA-512` (RFC 5802, RFC 7677). Pure: no I/O; the random client
//! nonce is passed in, so the exchange is testable against the RFC's vectors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::config::Secret;

/// Kafka's smallest SCRAM iteration count; a server asking for fewer is refused.
pub const MIN_ITERATIONS: u32 = 4096;
/// Largest iteration count we accept, so a hostile server cannot make us spin for minutes.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The `PLAIN` mechanism's single message: `\0username\0password`.
pub fn plain_message(username: &str, password: &Secret) -> Vec<u8> {
    let mut out = Vec::with_capacity(username.len() + password.expose().len() + 2);
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.expose().as_bytes());
    out
}

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

/// Why a SCRAM exchange failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The server's message does not follow RFC 5802.
    #[error("the server sent an invalid SCRAM message: {0}")]
    InvalidServerMessage(String),
    /// The server's nonce does not extend ours (possible replay or man in the middle).
    #[error("the server's SCRAM nonce does not start with the client nonce")]
    NonceMismatch,
    /// The server asked for an iteration count outside the accepted range.
    #[error("the server asked for {0} SCRAM iterations; accepted range is 4096 to 1000000")]
    IterationCountOutOfRange(u32),
    /// The server reported an error in its final message (`e=...`).
    #[error("the server rejected the SCRAM exchange: {0}")]
    ServerError(String),
    /// The server's signature is wrong: it does not know the password (or is not the server).
    #[error("the server's SCRAM signature does not verify; the server may be an impostor")]
    ServerSignatureMismatch,
    /// A message was handled out of order.
    #[error("SCRAM message handled out of order")]
    OutOfOrder,
}

#[derive(Debug)]
enum State {
    Initial,
    WaitingServerFinal { server_signature: Vec<u8> },
    Done,
}

/// The client side of one SCRAM exchange. `Debug` redacts the password.
#[derive(Debug)]
pub struct ScramClient {
    hash: ScramHash,
    password: Secret,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

impl ScramClient {
    /// Starts an exchange for `username` with a client nonce (printable ASCII without `,`;
    /// use [`random_nonce`]).
    pub fn new(hash: ScramHash, username: &str, password: Secret, client_nonce: String) -> Self {
        let client_first_bare = format!("n={},r={}", escape_username(username), client_nonce);
        ScramClient {
            hash,
            password,
            client_nonce,
            client_first_bare,
            state: State::Initial,
        }
    }

    /// The client-first message (`n,,n=user,r=nonce`).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Handles the server-first message and returns the client-final message with the proof.
    pub fn handle_server_first(&mut self, server_first: &str) -> Result<String, ScramError> {
        if !matches!(self.state, State::Initial) {
            return Err(ScramError::OutOfOrder);
        }
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in server_first.split(',') {
            match attribute.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => {
                    salt = Some(BASE64.decode(v).map_err(|_| {
                        ScramError::InvalidServerMessage("salt is not base64".to_string())
                    })?);
                }
                Some(("i", v)) => {
                    iterations = Some(v.parse::<u32>().map_err(|_| {
                        ScramError::InvalidServerMessage(format!("iteration count `{v}`"))
                    })?);
                }
                Some(("m", _)) => {
                    return Err(ScramError::InvalidServerMessage(
                        "mandatory extension not supported".to_string(),
                    ));
                }
                Some(("e", v)) => return Err(ScramError::ServerError(v.to_string())),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(ScramError::InvalidServerMessage(
                "server-first message lacks r=, s= or i=".to_string(),
            ));
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::IterationCountOutOfRange(iterations));
        }
        let salted = self.hi(&salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.h(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = self.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key");
        let server_signature = self.hmac(&server_key, auth_message.as_bytes());
        self.state = State::WaitingServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks the server-final message: the server must prove it knows the password too.
    pub fn handle_server_final(&mut self, server_final: &str) -> Result<(), ScramError> {
        let State::WaitingServerFinal { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder);
        };
        let mut verifier = None;
        for attribute in server_final.split(',') {
            match attribute.split_once('=') {
                Some(("e", v)) => return Err(ScramError::ServerError(v.to_string())),
                Some(("v", v)) => verifier = Some(v),
                _ => {}
            }
        }
        let verifier = verifier.ok_or_else(|| {
            ScramError::InvalidServerMessage("server-final message lacks v=".to_string())
        })?;
        let received = BASE64.decode(verifier).map_err(|_| {
            ScramError::InvalidServerMessage("server signature is not base64".to_string())
        })?;
        if !constant_time_eq(&received, server_signature) {
            return Err(ScramError::ServerSignatureMismatch);
        }
        self.state = State::Done;
        Ok(())
    }

    /// Whether the server's signature has been verified.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn hi(&self, salt: &[u8], iterations: u32) -> Vec<u8> {
        let password = self.password.expose().as_bytes();
        match self.hash {
            ScramHash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramHash::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self.hash {
            ScramHash::Sha256 => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn h(&self, data: &[u8]) -> Vec<u8> {
        match self.hash {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// RFC 5802 `saslname`: `=` becomes `=3D` and `,` becomes `=2C`.
fn escape_username(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh client nonce: 24 random bytes, base64-encoded (printable, no `,`).
pub fn random_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(BASE64.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange.
    #[test]
    fn rfc7677_sha256_test_vector() {
        let mut client = ScramClient::new(
            ScramHash::Sha256,
            "user",
            Secret::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".to_string(),
        );
        assert_eq!(client.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = client
            .handle_server_first(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .handle_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(client.is_done());
    }

    #[test]
    fn wrong_server_signature_is_rejected() {
        let mut client = ScramClient::new(
            ScramHash::Sha256,
            "user",
            Secret::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".to_string(),
        );
        client
            .handle_server_first(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            client.handle_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::ServerSignatureMismatch)
        );
        assert!(!client.is_done());
    }

    #[test]
    fn hostile_or_broken_server_messages_are_rejected() {
        let client = || {
            ScramClient::new(
                ScramHash::Sha512,
                "a,b=c",
                Secret::new("pw"),
                "abc".to_string(),
            )
        };
        assert_eq!(client().client_first(), "n,,n=a=2Cb=3Dc,r=abc");
        assert_eq!(
            client().handle_server_first("r=xyz123,s=c2FsdA==,i=4096"),
            Err(ScramError::NonceMismatch)
        );
        assert_eq!(
            client().handle_server_first("r=abcdef,s=c2FsdA==,i=1"),
            Err(ScramError::IterationCountOutOfRange(1))
        );
        assert!(matches!(
            client().handle_server_first("r=abcdef,i=4096"),
            Err(ScramError::InvalidServerMessage(_))
        ));
        assert_eq!(
            client().handle_server_first("e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".to_string()))
        );
        assert_eq!(
            client().handle_server_final("v=AAAA"),
            Err(ScramError::OutOfOrder)
        );
        let mut c = client();
        let final_message = c.handle_server_first("r=abcdef,s=c2FsdA==,i=4096").unwrap();
        // SHA-512 proofs are 64 bytes.
        let proof = final_message.rsplit_once("p=").unwrap().1;
        assert_eq!(BASE64.decode(proof).unwrap().len(), 64);
    }

    #[test]
    fn plain_message_layout_and_nonce() {
        assert_eq!(plain_message("u", &Secret::new("p")), b"\0u\0p".to_vec());
        let n1 = random_nonce().unwrap();
        let n2 = random_nonce().unwrap();
        assert_ne!(n1, n2);
        assert!(!n1.contains(','));
    }
}
