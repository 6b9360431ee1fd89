//! Client configuration: bootstrap servers, security protocol, SASL credentials, TLS trust,
//! timeouts, read from a Kafka-style `.properties` file (the `--command-config` file Kafka's
//! own tools take) and/or set in code. Parsing is pure; only [`ClientConfig::from_file`]
//! reads the file. Secrets are kept in [`Secret`], whose `Debug` is redacted.
//!
//! Supported keys (anything else is warned about and ignored):
//! `bootstrap.servers`, `security.protocol` (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`,
//! `SASL_SSL`), `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`),
//! `sasl.jaas.config` (the `PlainLoginModule` / `ScramLoginModule` line), `sasl.username` and
//! `sasl.password` (librdkafka style), `ssl.truststore.location` with `ssl.truststore.type=PEM`,
//! `ssl.truststore.certificates` (inline PEM), `ssl.ca.location` (librdkafka),
//! `ssl.endpoint.identification.algorithm` (`https` or empty to skip host name checks),
//! `ssl.certificate.location` + `ssl.key.location` or `ssl.keystore.location` with
//! `ssl.keystore.type=PEM` (client certificate), `client.id`, `request.timeout.ms`,
//! `socket.connection.setup.timeout.ms`, `default.api.timeout.ms`, `retry.backoff.ms`,
//! `retry.backoff.max.ms`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// A secret string (password). `Debug` prints `Secret(***)`; there is no `Display`, so it cannot
/// end up in a log line by accident. Use [`Secret::expose`] where the value is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How a client talks to the brokers' listener (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Kafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!(
                "unknown security protocol `{other}`; use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )),
        }
    }
}

/// A SASL mechanism (`sasl.mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SaslMechanism {
    /// `PLAIN`: user name and password sent as is (use it only over TLS).
    #[default]
    Plain,
    /// `SCRAM-SHA-256` (RFC 5802 / RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    /// Kafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "GSSAPI" | "OAUTHBEARER" => Err(format!(
                "SASL mechanism `{}` is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                s.trim()
            )),
            other => Err(format!(
                "unknown SASL mechanism `{other}`; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )),
        }
    }
}

/// SASL user name, password and mechanism. `Debug` redacts the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// The operating system's trust store.
    System,
    /// A PEM file with one or more CA certificates.
    PemFile(PathBuf),
    /// PEM text given inline (`ssl.truststore.certificates`).
    PemText(String),
}

/// A client certificate for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// PEM file with the certificate chain.
    pub certificate_chain: PathBuf,
    /// PEM file with the (unencrypted) private key; may be the same file.
    pub private_key: PathBuf,
}

/// TLS settings, used when the security protocol is `SSL` or `SASL_SSL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trusted CAs.
    pub ca: CaSource,
    /// Whether to check that the broker's certificate names the host we connect to
    /// (`ssl.endpoint.identification.algorithm=https`, Kafka's default). The chain is always
    /// verified.
    pub verify_hostname: bool,
    /// Client certificate, if the listener requires one.
    pub client_certificate: Option<ClientCertificate>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca: CaSource::System,
            verify_hostname: true,
            client_certificate: None,
        }
    }
}

/// A `host:port` to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddress {
    /// An address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        BrokerAddress {
            host: host.into(),
            port,
        }
    }

    /// Parses a comma-separated list like `bootstrap.servers`.
    pub fn parse_list(list: &str) -> Result<Vec<BrokerAddress>, String> {
        let addresses: Vec<BrokerAddress> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        if addresses.is_empty() {
            return Err("the list of bootstrap servers is empty".to_string());
        }
        Ok(addresses)
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for BrokerAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s
            .split_once("://")
            .map_or(s, |(_, rest)| rest)
            .trim_end_matches('/');
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(|| {
                format!("`{s}` is not HOST:PORT (IPv6 hosts look like [::1]:9092)")
            })?;
            (host, port)
        } else {
            s.rsplit_once(':')
                .ok_or_else(|| format!("`{s}` is not HOST:PORT, e.g. 127.0.0.1:9092"))?
        };
        if host.is_empty() {
            return Err(format!(
                "`{s}` has no host; expected HOST:PORT, e.g. 127.0.0.1:9092"
            ));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{s}` has an invalid port `{port}`; expected 1-65535"))?;
        Ok(BrokerAddress::new(host, port))
    }
}

/// Everything needed to connect to a cluster. `Debug` redacts secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Brokers to ask for cluster metadata first.
    pub bootstrap: Vec<BrokerAddress>,
    /// Listener protocol.
    pub security_protocol: SecurityProtocol,
    /// SASL credentials, required for `SASL_*` protocols.
    pub sasl: Option<SaslCredentials>,
    /// TLS settings, used for `SSL` and `SASL_SSL`.
    pub tls: TlsSettings,
    /// `client.id` sent with every request.
    pub client_id: String,
    /// Timeout of one TCP connect plus TLS and SASL handshakes (`socket.connection.setup.timeout.ms`).
    pub connect_timeout: Duration,
    /// Timeout of one request on the wire (`request.timeout.ms`).
    pub request_timeout: Duration,
    /// Overall deadline of one admin operation including retries (`default.api.timeout.ms`).
    pub api_timeout: Duration,
    /// First backoff between retries (`retry.backoff.ms`); doubles on each retry.
    pub retry_backoff: Duration,
    /// Largest backoff between retries (`retry.backoff.max.ms`).
    pub retry_backoff_max: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap: Vec::new(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: TlsSettings::default(),
            client_id: "kpilot".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            api_timeout: Duration::from_secs(60),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
        }
    }
}

/// A configuration read from a properties file, with what was ignored.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration (its `bootstrap` may be empty if the file has no
    /// `bootstrap.servers`; set it before connecting).
    pub config: ClientConfig,
    /// Keys that were not used, and why.
    pub warnings: Vec<ConfigWarning>,
}

/// A key in a properties file that was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub file: String,
    /// 1-based line number where the entry starts.
    pub line: usize,
    /// The key.
    pub key: String,
    /// Why it was ignored.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

/// Why a client configuration could not be read or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The properties file could not be read.
    #[error("cannot read client config file {file}: {source}")]
    ReadFile {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not valid properties syntax.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("{file}:{line}: invalid value for `{key}`: {reason}")]
    InvalidValue {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// What is wrong and what to do (never contains a secret).
        reason: String,
    },
    /// A `SASL_*` protocol is configured without credentials.
    #[error(
        "{file}: security.protocol={protocol} needs SASL credentials: set sasl.mechanism and sasl.jaas.config (or sasl.username and sasl.password)"
    )]
    MissingSaslCredentials {
        /// The file (or `<flags>`).
        file: String,
        /// The protocol.
        protocol: SecurityProtocol,
    },
    /// No bootstrap servers were given.
    #[error(
        "no bootstrap servers: pass --bootstrap HOST:PORT or set bootstrap.servers in the client config file"
    )]
    MissingBootstrap,
}

/// One `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyEntry {
    /// 1-based line where the entry starts.
    pub line: usize,
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped.
    pub value: String,
}

/// Parses Java `.properties` text: `key=value`, `key: value` or `key value`; `#` and `!`
/// comments; a trailing backslash continues the line; `\t`, `\n`, `\uXXXX`... escapes.
pub fn parse_properties(text: &str, file: &str) -> Result<Vec<PropertyEntry>, ConfigError> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let start_line = index + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut current = trimmed.to_string();
        loop {
            if ends_with_continuation(&current) {
                current.pop();
                logical.push_str(&current);
                match lines.next() {
                    Some((_, next)) => current = next.trim_start().to_string(),
                    None => break,
                }
            } else {
                logical.push_str(&current);
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|message| ConfigError::Syntax {
            file: file.to_string(),
            line: start_line,
            message,
        })?;
        let value = unescape(value).map_err(|message| ConfigError::Syntax {
            file: file.to_string(),
            line: start_line,
            message: format!("in the value of `{key}`: {message}"),
        })?;
        entries.push(PropertyEntry {
            line: start_line,
            key,
            value,
        });
    }
    Ok(entries)
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).map_or(rest, str::trim_start);
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid unicode escape `\\u{hex}`"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

impl ClientConfig {
    /// A plaintext configuration for these bootstrap servers, with Kafka's default timeouts.
    pub fn new(bootstrap: Vec<BrokerAddress>) -> Self {
        ClientConfig {
            bootstrap,
            ..ClientConfig::default()
        }
    }

    /// Reads a Kafka-style properties file (e.g. the file given to Kafka tools'
    /// `--command-config`). Performs I/O (reads the file and checks that files it names exist).
    pub fn from_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            file: file.clone(),
            source,
        })?;
        let loaded = Self::from_properties(&text, &file)?;
        loaded.check_files(&file, &text)?;
        Ok(loaded)
    }

    /// Builds a configuration from properties text; `file` names the source in messages.
    /// Pure: file paths are recorded, not opened.
    pub fn from_properties(text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        let entries = parse_properties(text, file)?;
        let mut config = ClientConfig::default();
        let mut warnings = Vec::new();
        let mut mechanism: Option<(SaslMechanism, usize)> = None;
        let mut jaas: Option<(JaasCredentials, usize)> = None;
        let mut username: Option<String> = None;
        let mut password: Option<Secret> = None;
        let mut truststore: Option<(PathBuf, usize)> = None;
        let mut truststore_type: Option<(String, usize)> = None;
        let mut keystore: Option<(PathBuf, usize)> = None;
        let mut keystore_type: Option<(String, usize)> = None;
        let mut cert_location: Option<PathBuf> = None;
        let mut key_location: Option<PathBuf> = None;

        for entry in &entries {
            let invalid = |reason: String| ConfigError::InvalidValue {
                file: file.to_string(),
                line: entry.line,
                key: entry.key.clone(),
                reason,
            };
            let value = entry.value.trim();
            let ms = || -> Result<Duration, ConfigError> {
                value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| invalid(format!("`{value}` is not a number of milliseconds")))
            };
            match entry.key.as_str() {
                "bootstrap.servers" => {
                    config.bootstrap = BrokerAddress::parse_list(value).map_err(invalid)?;
                }
                "security.protocol" => {
                    config.security_protocol = value.parse().map_err(invalid)?;
                }
                "sasl.mechanism" => {
                    mechanism = Some((value.parse().map_err(invalid)?, entry.line));
                }
                "sasl.jaas.config" => {
                    jaas = Some((parse_jaas(value).map_err(invalid)?, entry.line));
                }
                "sasl.username" => username = Some(value.to_string()),
                "sasl.password" => password = Some(Secret::new(value)),
                "ssl.truststore.location" | "ssl.ca.location" => {
                    truststore = Some((PathBuf::from(value), entry.line));
                }
                "ssl.truststore.type" => {
                    truststore_type = Some((value.to_ascii_uppercase(), entry.line));
                }
                "ssl.truststore.certificates" => {
                    config.tls.ca = CaSource::PemText(entry.value.clone());
                }
                "ssl.endpoint.identification.algorithm" => {
                    match value.to_ascii_lowercase().as_str() {
                        "https" => config.tls.verify_hostname = true,
                        "" | "none" => config.tls.verify_hostname = false,
                        _ => {
                            return Err(invalid(format!(
                                "`{value}` is not supported; use `https` to check host names or an empty value to skip the check"
                            )));
                        }
                    }
                }
                "ssl.keystore.location" => keystore = Some((PathBuf::from(value), entry.line)),
                "ssl.keystore.type" => {
                    keystore_type = Some((value.to_ascii_uppercase(), entry.line))
                }
                "ssl.certificate.location" => cert_location = Some(PathBuf::from(value)),
                "ssl.key.location" => key_location = Some(PathBuf::from(value)),
                "ssl.key.password" | "ssl.keystore.password" => {
                    if !value.is_empty() {
                        return Err(invalid(
                            "encrypted private keys are not supported; decrypt the key into an unencrypted PEM file (`openssl pkey -in key.pem -out key-plain.pem`) and keep it private".to_string(),
                        ));
                    }
                }
                "client.id" => config.client_id = value.to_string(),
                "request.timeout.ms" => config.request_timeout = ms()?,
                "socket.connection.setup.timeout.ms" => config.connect_timeout = ms()?,
                "default.api.timeout.ms" => config.api_timeout = ms()?,
                "retry.backoff.ms" => config.retry_backoff = ms()?,
                "retry.backoff.max.ms" => config.retry_backoff_max = ms()?,
                "ssl.truststore.password" => warnings.push(ConfigWarning {
                    file: file.to_string(),
                    line: entry.line,
                    key: entry.key.clone(),
                    message: "not needed for a PEM trust store; ignored".to_string(),
                }),
                _ => warnings.push(ConfigWarning {
                    file: file.to_string(),
                    line: entry.line,
                    key: entry.key.clone(),
                    message: "unknown or unsupported key; ignored".to_string(),
                }),
            }
        }

        if let Some((kind, line)) = truststore_type
            && kind != "PEM"
        {
            return Err(ConfigError::InvalidValue {
                file: file.to_string(),
                line,
                key: "ssl.truststore.type".to_string(),
                reason: format!(
                    "trust store type `{kind}` is not supported; use PEM (export the CA: `keytool -exportcert -rfc -alias CA -keystore truststore.jks > ca.pem`)"
                ),
            });
        }
        if let Some((path, _)) = truststore {
            config.tls.ca = CaSource::PemFile(path);
        }
        match (keystore, cert_location, key_location) {
            (Some((path, line)), _, _) => {
                if let Some((kind, _)) = keystore_type
                    && kind != "PEM"
                {
                    return Err(ConfigError::InvalidValue {
                        file: file.to_string(),
                        line,
                        key: "ssl.keystore.type".to_string(),
                        reason: format!(
                            "key store type `{kind}` is not supported; use a PEM file holding the private key and the certificate chain"
                        ),
                    });
                }
                config.tls.client_certificate = Some(ClientCertificate {
                    certificate_chain: path.clone(),
                    private_key: path,
                });
            }
            (None, Some(cert), Some(key)) => {
                config.tls.client_certificate = Some(ClientCertificate {
                    certificate_chain: cert,
                    private_key: key,
                });
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(ConfigError::InvalidValue {
                    file: file.to_string(),
                    line: entries
                        .iter()
                        .find(|e| e.key == "ssl.certificate.location" || e.key == "ssl.key.location")
                        .map_or(0, |e| e.line),
                    key: "ssl.certificate.location".to_string(),
                    reason: "a client certificate needs both ssl.certificate.location and ssl.key.location".to_string(),
                });
            }
            (None, None, None) => {}
        }

        // SASL credentials: the JAAS line wins over sasl.username/sasl.password.
        let credentials = match (jaas, username, password) {
            (Some((jaas, line)), _, _) => {
                Some((jaas.username, jaas.password, Some((jaas.module, line))))
            }
            (None, Some(user), Some(pass)) => Some((user, pass, None)),
            (None, Some(_), None) | (None, None, Some(_)) => {
                let line = entries
                    .iter()
                    .find(|e| e.key == "sasl.username" || e.key == "sasl.password")
                    .map_or(0, |e| e.line);
                return Err(ConfigError::InvalidValue {
                    file: file.to_string(),
                    line,
                    key: "sasl.username".to_string(),
                    reason: "set both sasl.username and sasl.password".to_string(),
                });
            }
            (None, None, None) => None,
        };
        if let Some((username, password, module)) = credentials {
            let mechanism_value = mechanism.map(|(m, _)| m).unwrap_or_default();
            if let Some((module, line)) = module {
                let compatible = match module {
                    JaasModule::Plain => mechanism_value == SaslMechanism::Plain,
                    JaasModule::Scram => matches!(
                        mechanism_value,
                        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512
                    ),
                };
                if !compatible {
                    return Err(ConfigError::InvalidValue {
                        file: file.to_string(),
                        line,
                        key: "sasl.jaas.config".to_string(),
                        reason: format!(
                            "the {} login module does not match sasl.mechanism={mechanism_value}; use {} with this mechanism",
                            module.class_hint(),
                            if mechanism_value == SaslMechanism::Plain {
                                "org.apache.kafka.common.security.plain.PlainLoginModule"
                            } else {
                                "org.apache.kafka.common.security.scram.ScramLoginModule"
                            }
                        ),
                    });
                }
            }
            config.sasl = Some(SaslCredentials {
                mechanism: mechanism_value,
                username,
                password,
            });
            if !config.security_protocol.uses_sasl() {
                warnings.push(ConfigWarning {
                    file: file.to_string(),
                    line: mechanism.map_or(0, |(_, l)| l),
                    key: "sasl.jaas.config".to_string(),
                    message: format!(
                        "SASL credentials are ignored because security.protocol is {}",
                        config.security_protocol
                    ),
                });
            }
        }
        if config.security_protocol.uses_sasl() && config.sasl.is_none() {
            return Err(ConfigError::MissingSaslCredentials {
                file: file.to_string(),
                protocol: config.security_protocol,
            });
        }
        for w in &warnings {
            tracing::warn!(file = %w.file, line = w.line, key = %w.key, "{}", w.message);
        }
        Ok(LoadedConfig { config, warnings })
    }

    /// Checks that the configuration can be used to connect.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap.is_empty() {
            return Err(ConfigError::MissingBootstrap);
        }
        if self.security_protocol.uses_sasl() && self.sasl.is_none() {
            return Err(ConfigError::MissingSaslCredentials {
                file: "<configuration>".to_string(),
                protocol: self.security_protocol,
            });
        }
        Ok(())
    }
}

impl LoadedConfig {
    /// Checks that the files named by the configuration exist, naming the key and line.
    fn check_files(&self, file: &str, text: &str) -> Result<(), ConfigError> {
        let entries = parse_properties(text, file)?;
        for entry in entries.iter().filter(|e| {
            matches!(
                e.key.as_str(),
                "ssl.truststore.location"
                    | "ssl.ca.location"
                    | "ssl.keystore.location"
                    | "ssl.certificate.location"
                    | "ssl.key.location"
            )
        }) {
            let path = Path::new(entry.value.trim());
            if !path.is_file() {
                return Err(ConfigError::InvalidValue {
                    file: file.to_string(),
                    line: entry.line,
                    key: entry.key.clone(),
                    reason: format!("file `{}` does not exist or is not a file", path.display()),
                });
            }
        }
        Ok(())
    }
}

/// Which JAAS login module a `sasl.jaas.config` line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JaasModule {
    Plain,
    Scram,
}

impl JaasModule {
    fn class_hint(self) -> &'static str {
        match self {
            JaasModule::Plain => "PlainLoginModule",
            JaasModule::Scram => "ScramLoginModule",
        }
    }
}

struct JaasCredentials {
    module: JaasModule,
    username: String,
    password: Secret,
}

/// Parses `org.apache.kafka.common.security.scram.ScramLoginModule required username="u"
/// password="p";`. Error messages never contain the password.
fn parse_jaas(value: &str) -> Result<JaasCredentials, String> {
    let value = value.trim();
    let mut tokens = JaasTokens { rest: value };
    let class = tokens
        .word()
        .ok_or_else(|| "expected a login module class, e.g. org.apache.kafka.common.security.scram.ScramLoginModule required username=\"...\" password=\"...\";".to_string())?;
    let module = if class.ends_with(".PlainLoginModule") || class == "PlainLoginModule" {
        JaasModule::Plain
    } else if class.ends_with(".ScramLoginModule") || class == "ScramLoginModule" {
        JaasModule::Scram
    } else {
        return Err(format!(
            "login module `{class}` is not supported; use PlainLoginModule or ScramLoginModule"
        ));
    };
    let flag = tokens.word().unwrap_or_default();
    if !matches!(
        flag.to_ascii_lowercase().as_str(),
        "required" | "requisite" | "sufficient" | "optional"
    ) {
        return Err(format!(
            "expected a control flag (`required`) after the login module class, found `{flag}`"
        ));
    }
    let mut username = None;
    let mut password = None;
    loop {
        tokens.skip_ws();
        if tokens.rest.is_empty() || tokens.rest.starts_with(';') {
            break;
        }
        let key = tokens
            .key()
            .ok_or_else(|| "expected `name=value` options after the control flag".to_string())?;
        let option_value = tokens.value().map_err(|m| format!("option `{key}`: {m}"))?;
        match key.as_str() {
            "username" => username = Some(option_value),
            "password" => password = Some(Secret::new(option_value)),
            _ => {}
        }
    }
    if !tokens.rest.starts_with(';') {
        return Err("the JAAS line must end with `;`".to_string());
    }
    let username =
        username.ok_or_else(|| "the JAAS line has no username=\"...\" option".to_string())?;
    let password =
        password.ok_or_else(|| "the JAAS line has no password=\"...\" option".to_string())?;
    Ok(JaasCredentials {
        module,
        username,
        password,
    })
}

struct JaasTokens<'a> {
    rest: &'a str,
}

impl JaasTokens<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn word(&mut self) -> Option<String> {
        self.skip_ws();
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == ';')
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let word = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        Some(word)
    }

    fn key(&mut self) -> Option<String> {
        self.skip_ws();
        let end = self.rest.find('=')?;
        let key = self.rest[..end].trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        self.rest = &self.rest[end + 1..];
        Some(key)
    }

    fn value(&mut self) -> Result<String, String> {
        self.skip_ws();
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            out.push(next);
                        }
                    }
                    '"' => {
                        self.rest = &quoted[i + 1..];
                        return Ok(out);
                    }
                    c => out.push(c),
                }
            }
            Err("the quoted value has no closing `\"`".to_string())
        } else {
            let end = self
                .rest
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(self.rest.len());
            let value = self.rest[..end].to_string();
            self.rest = &self.rest[end..];
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
        ClientConfig::from_properties(text, "client.properties")
    }

    #[test]
    fn parses_properties_syntax() {
        let entries = parse_properties(
            "# comment\n! other comment\n  a=1\nb : 2\nc 3\nd=multi \\\n   line\ne=x\\=y\\u0041\nempty\n",
            "f",
        )
        .unwrap();
        let pairs: Vec<(usize, &str, &str)> = entries
            .iter()
            .map(|e| (e.line, e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (3, "a", "1"),
                (4, "b", "2"),
                (5, "c", "3"),
                (6, "d", "multi line"),
                (8, "e", "x=yA"),
                (9, "empty", ""),
            ]
        );
    }

    #[test]
    fn scram_over_tls_like_kafka_tools() {
        let loaded = load(
            "bootstrap.servers=127.0.0.1:9093, localhost:9094\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"alice\" password=\"s3cr\\\\\\\"et\";\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location=/tmp/ca.pem\n\
             ssl.endpoint.identification.algorithm=\n\
             request.timeout.ms=5000\n",
        )
        .unwrap();
        let c = loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            c.bootstrap,
            vec![
                BrokerAddress::new("127.0.0.1", 9093),
                BrokerAddress::new("localhost", 9094)
            ]
        );
        assert_eq!(c.security_protocol, SecurityProtocol::SaslSsl);
        let sasl = c.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.username, "alice");
        assert_eq!(sasl.password.expose(), "s3cr\"et");
        assert_eq!(c.tls.ca, CaSource::PemFile("/tmp/ca.pem".into()));
        assert!(!c.tls.verify_hostname);
        assert_eq!(c.request_timeout, Duration::from_secs(5));
    }

    #[test]
    fn librdkafka_style_keys() {
        let c = load(
            "security.protocol=sasl_plaintext\nsasl.mechanism=PLAIN\nsasl.username=bob\nsasl.password=pw\nssl.ca.location=/etc/ca.pem\n",
        )
        .unwrap()
        .config;
        let sasl = c.sasl.unwrap();
        assert_eq!(
            (
                sasl.mechanism,
                sasl.username.as_str(),
                sasl.password.expose()
            ),
            (SaslMechanism::Plain, "bob", "pw")
        );
        assert_eq!(c.tls.ca, CaSource::PemFile("/etc/ca.pem".into()));
    }

    #[test]
    fn debug_never_shows_passwords() {
        let c = load(
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";\n",
        )
        .unwrap()
        .config;
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("Secret(***)"));
    }

    #[test]
    fn unknown_keys_are_warnings_with_file_and_line() {
        let loaded = load("bootstrap.servers=h:1\nlinger.ms=5\n").unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert_eq!(
            loaded.warnings[0].to_string(),
            "client.properties:2: `linger.ms`: unknown or unsupported key; ignored"
        );
    }

    #[test]
    fn errors_name_file_line_and_key_without_secrets() {
        let err = load("a=b\nsecurity.protocol=TLS\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "client.properties:2: invalid value for `security.protocol`: unknown security protocol `TLS`; use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        );
        let err = load("sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"topsecret\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("client.properties:1: invalid value for `sasl.jaas.config`"),
            "{text}"
        );
        assert!(text.contains("must end with `;`"), "{text}");
        assert!(!text.contains("topsecret"));
        let err = load("ssl.truststore.type=JKS\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("client.properties:1: invalid value for `ssl.truststore.type`")
        );
        let err = load("request.timeout.ms=soon\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("`soon` is not a number of milliseconds")
        );
    }

    #[test]
    fn sasl_protocol_without_credentials_or_with_wrong_module_fails() {
        let err = load("security.protocol=SASL_SSL\n").unwrap_err();
        assert!(matches!(err, ConfigError::MissingSaslCredentials { .. }));
        let err = load(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p\";\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("does not match sasl.mechanism=SCRAM-SHA-256"),
            "{err}"
        );
    }

    #[test]
    fn broker_addresses() {
        assert_eq!(
            "h:1".parse::<BrokerAddress>(),
            Ok(BrokerAddress::new("h", 1))
        );
        assert_eq!(
            "[::1]:9092".parse::<BrokerAddress>().map(|a| a.to_string()),
            Ok("[::1]:9092".to_string())
        );
        assert_eq!(
            "SASL_SSL://k1:9093".parse::<BrokerAddress>(),
            Ok(BrokerAddress::new("k1", 9093))
        );
        assert!("nohost".parse::<BrokerAddress>().is_err());
        assert!("h:0".parse::<BrokerAddress>().is_err());
        assert!("h:99999".parse::<BrokerAddress>().is_err());
        assert!(BrokerAddress::parse_list(" , ").is_err());
    }
}
