//! The secure (`SASL_SSL`) listener's material: a CA and a broker certificate for
//! 127.0.0.1/localhost generated with the `openssl` CLI, SASL users with random passwords, and
//! client property files for the Java tools. Performs I/O (files, `openssl` processes).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::config::{ListenerSecurity, Properties};
use crate::error::TestbedError;
use crate::random::hex_token;

/// A SASL mechanism enabled on the secure listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN` (users configured in the broker's JAAS config).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256` (credentials stored in the cluster metadata at format time).
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512` (credentials stored in the cluster metadata at format time).
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// Every mechanism the secure listener enables.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// The mechanism's name in Kafka configuration (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The JAAS login module a client uses with this mechanism.
    pub fn login_module(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            }
        }
    }

    fn user_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "kpilot-plain",
            SaslMechanism::ScramSha256 => "kpilot-scram256",
            SaslMechanism::ScramSha512 => "kpilot-scram512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kafka_name())
    }
}

/// A user the secure listener accepts with one mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaslUser {
    /// The mechanism this user authenticates with.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password (random per cluster; a test secret, but still never logged).
    pub password: String,
}

impl fmt::Debug for SaslUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslUser")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a client needs to use a cluster's `SASL_SSL` listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureListener {
    /// The CA certificate (PEM) that signed the brokers' certificate; trust it to connect.
    pub ca_cert_pem: PathBuf,
    /// The brokers' key store (PEM: PKCS#8 private key, then the certificate chain). The
    /// certificate is valid for `IP:127.0.0.1` and `DNS:localhost`.
    pub broker_keystore_pem: PathBuf,
    /// One user per mechanism in [`SaslMechanism::ALL`].
    pub users: Vec<SaslUser>,
    /// Directory holding the files above and the client property files.
    pub dir: PathBuf,
}

impl SecureListener {
    /// The user for `mechanism`.
    pub fn user(&self, mechanism: SaslMechanism) -> Option<&SaslUser> {
        self.users.iter().find(|u| u.mechanism == mechanism)
    }

    /// A Java client properties file (`security.protocol=SASL_SSL`, the mechanism, the JAAS
    /// login, the CA as PEM trust store) for `--command-config` of the Kafka tools.
    pub fn client_properties(&self, mechanism: SaslMechanism) -> PathBuf {
        self.dir.join(format!(
            "client-{}.properties",
            mechanism.kafka_name().to_ascii_lowercase()
        ))
    }

    /// The `--add-scram` arguments of the storage tool for the SCRAM users.
    pub(crate) fn storage_tool_scram_args(&self) -> Vec<String> {
        self.users
            .iter()
            .filter(|u| u.mechanism != SaslMechanism::Plain)
            .flat_map(|u| {
                [
                    "--add-scram".to_owned(),
                    format!(
                        "{}=[name={},password={}]",
                        u.mechanism, u.username, u.password
                    ),
                ]
            })
            .collect()
    }

    /// What the brokers' `server.properties` needs.
    pub(crate) fn listener_security(&self) -> ListenerSecurity {
        ListenerSecurity {
            keystore_pem: self.broker_keystore_pem.clone(),
            truststore_pem: self.ca_cert_pem.clone(),
            plain_users: self
                .users
                .iter()
                .filter(|u| u.mechanism == SaslMechanism::Plain)
                .map(|u| (u.username.clone(), u.password.clone()))
                .collect(),
        }
    }
}

/// The openssl configuration: distinguished names and the CA and broker extensions (v3, with
/// the SANs rustls and Java check).
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = kpilot-testbed

[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[broker_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Generates a CA, a broker certificate, one user per mechanism and the client property files
/// in `dir` (created).
pub(crate) fn generate(dir: &Path) -> Result<SecureListener, TestbedError> {
    fs::create_dir_all(dir).map_err(TestbedError::write(dir))?;
    let cnf = dir.join("openssl.cnf");
    fs::write(&cnf, OPENSSL_CNF).map_err(TestbedError::write(&cnf))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let serial = format!("0x{}", hex_token::<8>()?);
    openssl(
        dir,
        &[
            &[
                "req",
                "-x509",
                "-config",
                "openssl.cnf",
                "-extensions",
                "ca_ext",
            ][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=kpilot-testbed-ca",
            ],
        ],
    )?;
    openssl(
        dir,
        &[
            &["req", "-new", "-config", "openssl.cnf"][..],
            &ec,
            &[
                "-keyout",
                "broker.key",
                "-out",
                "broker.csr",
                "-subj",
                "/CN=localhost",
            ],
        ],
    )?;
    openssl(
        dir,
        &[&[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "30",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "broker_ext",
            "-out",
            "broker.crt",
        ][..]],
    )?;

    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(TestbedError::read(path))
    };
    let keystore = dir.join("broker-keystore.pem");
    let chain = format!(
        "{}{}{}",
        read("broker.key")?,
        read("broker.crt")?,
        read("ca.pem")?
    );
    fs::write(&keystore, chain).map_err(TestbedError::write(&keystore))?;

    let users = SaslMechanism::ALL
        .iter()
        .map(|&mechanism| {
            Ok(SaslUser {
                mechanism,
                username: mechanism.user_name().to_owned(),
                password: hex_token::<12>()?,
            })
        })
        .collect::<Result<Vec<_>, TestbedError>>()?;
    let listener = SecureListener {
        ca_cert_pem: dir.join("ca.pem"),
        broker_keystore_pem: keystore,
        users,
        dir: dir.to_owned(),
    };
    for user in &listener.users {
        let mut p = Properties::default();
        p.set("security.protocol", "SASL_SSL");
        p.set("sasl.mechanism", user.mechanism.kafka_name());
        p.set(
            "sasl.jaas.config",
            format!(
                "{} required username=\"{}\" password=\"{}\";",
                user.mechanism.login_module(),
                user.username,
                user.password
            ),
        );
        p.set("ssl.truststore.type", "PEM");
        p.set(
            "ssl.truststore.location",
            listener.ca_cert_pem.to_string_lossy(),
        );
        let path = listener.client_properties(user.mechanism);
        fs::write(&path, p.render()).map_err(TestbedError::write(&path))?;
    }
    Ok(listener)
}

/// Runs `openssl` with the concatenated argument groups in `dir`.
fn openssl(dir: &Path, groups: &[&[&str]]) -> Result<(), TestbedError> {
    let args: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let command = format!("openssl {}", args.join(" "));
    let output = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .map_err(|e| TestbedError::GenerateCertificates {
            dir: dir.to_owned(),
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestbedError::GenerateCertificates {
            dir: dir.to_owned(),
            command,
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> SecureListener {
        SecureListener {
            ca_cert_pem: "/t/ca.pem".into(),
            broker_keystore_pem: "/t/k.pem".into(),
            users: SaslMechanism::ALL
                .iter()
                .map(|&m| SaslUser {
                    mechanism: m,
                    username: m.user_name().into(),
                    password: "pw".into(),
                })
                .collect(),
            dir: "/t".into(),
        }
    }

    #[test]
    fn scram_users_become_storage_tool_arguments() {
        assert_eq!(
            listener().storage_tool_scram_args(),
            [
                "--add-scram",
                "SCRAM-SHA-256=[name=kpilot-scram256,password=pw]",
                "--add-scram",
                "SCRAM-SHA-512=[name=kpilot-scram512,password=pw]",
            ]
        );
        assert_eq!(
            listener().listener_security().plain_users,
            [("kpilot-plain".to_owned(), "pw".to_owned())]
        );
    }

    #[test]
    fn debug_output_hides_passwords() {
        let text = format!("{:?}", listener());
        assert!(!text.contains("\"pw\""), "{text}");
        assert!(text.contains("kpilot-scram512"));
    }

    #[test]
    fn mechanism_names_round_trip_through_json() {
        for m in SaslMechanism::ALL {
            let json = serde_json::to_string(&m).expect("serialize");
            assert_eq!(json, format!("\"{}\"", m.kafka_name()));
            assert_eq!(
                serde_json::from_str::<SaslMechanism>(&json).expect("parse"),
                m
            );
        }
    }

    #[test]
    fn generated_material_is_a_valid_chain() {
        let dir = std::env::temp_dir().join(format!("kpilot-testbed-tls-{}", std::process::id()));
        let l = generate(&dir).expect("openssl is installed");
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&l.ca_cert_pem)
            .arg(dir.join("broker.crt"))
            .output()
            .expect("run openssl verify");
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.join("broker.crt"))
            .output()
            .expect("run openssl x509");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("IP Address:127.0.0.1") && text.contains("DNS:localhost"),
            "{text}"
        );
        let keystore = fs::read_to_string(&l.broker_keystore_pem).expect("keystore");
        assert!(
            keystore.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8 key first"
        );
        assert_eq!(keystore.matches("BEGIN CERTIFICATE").count(), 2);
        let props =
            fs::read_to_string(l.client_properties(SaslMechanism::ScramSha512)).expect("props");
        assert!(props.contains("sasl.mechanism=SCRAM-SHA-512"));
        assert_eq!(l.users.len(), 3);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
