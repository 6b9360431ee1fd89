//! One connection to one broker: TCP (and TLS), ApiVersions negotiation, SASL authentication,
//! then pipelined requests matched to responses by correlation id. Performs network I/O.
//!
//! A background task reads response frames and hands each to the request waiting for its
//! correlation id. Any read or write failure, or a request timeout, closes the connection: every
//! waiting request fails, and the owner (the admin client's pool) opens a new one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Encodable, Message, Request, StrBytes, VersionRange};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, instrument};

use crate::codec::{self, CodecError};
use crate::config::{BrokerAddress, SaslCredentials, SaslMechanism, SecurityProtocol};
use crate::error_code::KafkaErrorCode;
use crate::scram::{self, ScramClient, ScramError, ScramHash};

/// Byte streams a connection can run on (TCP, TLS over TCP, in-memory pipes in tests).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Highest version we use per API where newer versions change semantics this client does not
/// handle yet (Produce v13 addresses topics by id only).
fn version_cap(api: ApiKey) -> Option<i16> {
    match api {
        ApiKey::Produce => Some(12),
        _ => None,
    }
}

/// Why talking to a broker failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The broker address.
        address: BrokerAddress,
        /// The socket error.
        source: std::io::Error,
    },
    /// Connecting (TCP, TLS, ApiVersions, SASL) took longer than the connect timeout.
    #[error("connecting to {address} timed out after {after:?} (during {phase}){hint}")]
    ConnectTimeout {
        /// The broker address.
        address: BrokerAddress,
        /// The timeout.
        after: Duration,
        /// What was in progress.
        phase: &'static str,
        /// A hint about the likely cause, starting with "; " (or empty).
        hint: String,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {address} failed: {message}{hint}")]
    Tls {
        /// The broker address.
        address: BrokerAddress,
        /// rustls' message.
        message: String,
        /// A hint about the likely cause, starting with "; " (or empty).
        hint: String,
    },
    /// The host name is not valid for TLS server name checks.
    #[error("`{host}` is not a valid TLS server name")]
    InvalidServerName {
        /// The host.
        host: String,
    },
    /// The connection closed (or failed) before the response arrived.
    #[error("connection to {address} closed while waiting for {api:?}: {reason}{hint}")]
    Closed {
        /// The broker address.
        address: BrokerAddress,
        /// The request that was in flight.
        api: ApiKey,
        /// Why it closed.
        reason: String,
        /// A hint about the likely cause, starting with "; " (or empty).
        hint: String,
    },
    /// No response within the request timeout.
    #[error("{api:?} request to {address} timed out after {after:?}")]
    RequestTimeout {
        /// The broker address.
        address: BrokerAddress,
        /// The request.
        api: ApiKey,
        /// The timeout.
        after: Duration,
    },
    /// Writing the request failed.
    #[error("cannot send {api:?} request to {address}: {source}")]
    Send {
        /// The broker address.
        address: BrokerAddress,
        /// The request.
        api: ApiKey,
        /// The socket error.
        source: std::io::Error,
    },
    /// A request or response could not be encoded or decoded.
    #[error("{address}: {source}")]
    Codec {
        /// The broker address.
        address: BrokerAddress,
        /// The codec error.
        source: CodecError,
    },
    /// The broker does not support any version of an API that this client supports.
    #[error(
        "broker {address} does not support {api:?} in a version this client speaks (broker {broker}, client {client})"
    )]
    UnsupportedApi {
        /// The broker address.
        address: BrokerAddress,
        /// The API.
        api: ApiKey,
        /// The broker's version range, or `none`.
        broker: String,
        /// Our version range.
        client: String,
    },
    /// ApiVersions returned an error.
    #[error("ApiVersions to {address} failed: {error}")]
    ApiVersions {
        /// The broker address.
        address: BrokerAddress,
        /// The error.
        error: KafkaErrorCode,
    },
    /// The broker's listener does not enable the configured SASL mechanism.
    #[error(
        "broker {address} does not enable SASL mechanism {mechanism} on this listener (enabled: {enabled}); set sasl.mechanism to one of them"
    )]
    SaslMechanismNotEnabled {
        /// The broker address.
        address: BrokerAddress,
        /// Our mechanism.
        mechanism: SaslMechanism,
        /// The mechanisms it enables.
        enabled: String,
    },
    /// The broker rejected our credentials.
    #[error(
        "SASL {mechanism} authentication as `{username}` to {address} failed: {message}; check the user name and password (sasl.jaas.config or sasl.username/sasl.password)"
    )]
    AuthenticationFailed {
        /// The broker address.
        address: BrokerAddress,
        /// The mechanism.
        mechanism: SaslMechanism,
        /// The user name (never the password).
        username: String,
        /// The broker's message.
        message: String,
    },
    /// The SCRAM exchange failed on our side.
    #[error("SCRAM authentication to {address} failed: {source}")]
    Scram {
        /// The broker address.
        address: BrokerAddress,
        /// The SCRAM error.
        source: ScramError,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a SCRAM nonce: {0}")]
    Random(String),
}

impl ConnectionError {
    /// Whether trying again (possibly on another connection) may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ConnectionError::Connect { .. }
                | ConnectionError::ConnectTimeout { .. }
                | ConnectionError::Closed { .. }
                | ConnectionError::RequestTimeout { .. }
                | ConnectionError::Send { .. }
        )
    }

    /// The broker address the error is about.
    pub fn address(&self) -> Option<&BrokerAddress> {
        match self {
            ConnectionError::Connect { address, .. }
            | ConnectionError::ConnectTimeout { address, .. }
            | ConnectionError::Tls { address, .. }
            | ConnectionError::Closed { address, .. }
            | ConnectionError::RequestTimeout { address, .. }
            | ConnectionError::Send { address, .. }
            | ConnectionError::Codec { address, .. }
            | ConnectionError::UnsupportedApi { address, .. }
            | ConnectionError::ApiVersions { address, .. }
            | ConnectionError::SaslMechanismNotEnabled { address, .. }
            | ConnectionError::AuthenticationFailed { address, .. }
            | ConnectionError::Scram { address, .. } => Some(address),
            ConnectionError::InvalidServerName { .. } | ConnectionError::Random(_) => None,
        }
    }
}

/// What a connection needs to know to open and authenticate.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Listener protocol.
    pub security_protocol: SecurityProtocol,
    /// TLS configuration, required for `SSL` / `SASL_SSL`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL credentials, required for `SASL_*`.
    pub sasl: Option<SaslCredentials>,
    /// `client.id`.
    pub client_id: String,
    /// Timeout for TCP connect plus handshakes.
    pub connect_timeout: Duration,
    /// Timeout for one request.
    pub request_timeout: Duration,
}

type Waiter = oneshot::Sender<Result<Bytes, String>>;

#[derive(Default)]
struct Shared {
    pending: HashMap<i32, Waiter>,
    closed: Option<String>,
}

impl Shared {
    fn close(&mut self, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(reason.to_string());
        }
        for (_, waiter) in self.pending.drain() {
            let _ = waiter.send(Err(reason.to_string()));
        }
    }
}

/// An open, negotiated (and authenticated) connection to one broker.
pub struct Connection {
    address: BrokerAddress,
    security_protocol: SecurityProtocol,
    client_id: String,
    request_timeout: Duration,
    writer: tokio::sync::Mutex<WriteHalf<Box<dyn Stream>>>,
    shared: Arc<Mutex<Shared>>,
    next_correlation_id: AtomicI32,
    versions: Mutex<BTreeMap<i16, VersionRange>>,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("security_protocol", &self.security_protocol)
            .field("closed", &self.closed_reason())
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Opens a connection: TCP, TLS if configured, ApiVersions, SASL if configured; all within
    /// the connect timeout.
    #[instrument(level = "debug", skip(settings), fields(address = %address))]
    pub async fn open(
        address: &BrokerAddress,
        settings: &ConnectionSettings,
    ) -> Result<Connection, ConnectionError> {
        let phase = Arc::new(Mutex::new("TCP connect"));
        let result = tokio::time::timeout(
            settings.connect_timeout,
            Self::open_inner(address, settings, phase.clone()),
        )
        .await;
        // The handshake's own requests carry their own request timeout, so either clock may fire
        // first; both mean the handshake stalled and get the same error, naming the phase.
        let after = match result {
            Ok(Err(ConnectionError::RequestTimeout { after, .. })) => after,
            Err(_) => settings.connect_timeout,
            Ok(result) => return result,
        };
        let phase = *phase.lock().unwrap_or_else(|e| e.into_inner());
        let hint = match (phase, settings.security_protocol.uses_tls()) {
            ("TLS handshake", true) => {
                "; the listener may not speak TLS: check security.protocol".to_string()
            }
            ("ApiVersions", false) => {
                "; the listener may expect TLS: check security.protocol".to_string()
            }
            _ => String::new(),
        };
        Err(ConnectionError::ConnectTimeout {
            address: address.clone(),
            after,
            phase,
            hint,
        })
    }

    async fn open_inner(
        address: &BrokerAddress,
        settings: &ConnectionSettings,
        phase: Arc<Mutex<&'static str>>,
    ) -> Result<Connection, ConnectionError> {
        let set_phase = |p: &'static str| *phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
        let tcp = TcpStream::connect((address.host.as_str(), address.port))
            .await
            .map_err(|source| ConnectionError::Connect {
                address: address.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if settings.security_protocol.uses_tls() {
            set_phase("TLS handshake");
            let tls = settings.tls.clone().ok_or_else(|| ConnectionError::Tls {
                address: address.clone(),
                message: "no TLS configuration".to_string(),
                hint: String::new(),
            })?;
            let server_name = rustls_pki_types::ServerName::try_from(address.host.clone())
                .map_err(|_| ConnectionError::InvalidServerName {
                    host: address.host.clone(),
                })?;
            let connector = tokio_rustls::TlsConnector::from(tls);
            let stream = connector.connect(server_name, tcp).await.map_err(|e| {
                let message = e.to_string();
                ConnectionError::Tls {
                    address: address.clone(),
                    hint: tls_hint(&message),
                    message,
                }
            })?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let connection = Connection::start(address.clone(), stream, settings);
        set_phase("ApiVersions");
        connection.negotiate_versions().await?;
        if settings.security_protocol.uses_sasl() {
            set_phase("SASL authentication");
            let credentials =
                settings
                    .sasl
                    .as_ref()
                    .ok_or_else(|| ConnectionError::AuthenticationFailed {
                        address: address.clone(),
                        mechanism: SaslMechanism::Plain,
                        username: String::new(),
                        message: "no SASL credentials configured".to_string(),
                    })?;
            connection.authenticate(credentials).await?;
        }
        debug!(address = %address, "connection ready");
        Ok(connection)
    }

    /// Starts a connection over an already open stream, without negotiating. Used by
    /// [`Connection::open`] and by tests with in-memory streams.
    pub fn start(
        address: BrokerAddress,
        stream: Box<dyn Stream>,
        settings: &ConnectionSettings,
    ) -> Connection {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let reader = tokio::spawn(read_loop(read, shared.clone(), address.clone()));
        Connection {
            address,
            security_protocol: settings.security_protocol,
            client_id: settings.client_id.clone(),
            request_timeout: settings.request_timeout,
            writer: tokio::sync::Mutex::new(write),
            shared,
            next_correlation_id: AtomicI32::new(1),
            versions: Mutex::new(BTreeMap::new()),
            reader,
        }
    }

    /// The broker address.
    pub fn address(&self) -> &BrokerAddress {
        &self.address
    }

    /// Why the connection is closed, or `None` while it is usable.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed
            .clone()
    }

    /// Whether the connection can still carry requests.
    pub fn is_open(&self) -> bool {
        self.closed_reason().is_none()
    }

    /// The broker's supported version range for an API (from ApiVersions).
    pub fn broker_versions(&self, api: ApiKey) -> Option<VersionRange> {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(api as i16))
            .copied()
    }

    /// The version this connection uses for a request type: the highest that both we and the
    /// broker support.
    pub fn version_for<R: Request>(&self) -> Result<i16, ConnectionError> {
        let api = api_key::<R>();
        let ours = R::VERSIONS;
        let ours = VersionRange {
            min: ours.min,
            max: version_cap(api).map_or(ours.max, |cap| cap.min(ours.max)),
        };
        let theirs = self.broker_versions(api);
        match theirs.map(|t| t.intersect(&ours)) {
            Some(common) if !common.is_empty() => Ok(common.max),
            _ => Err(ConnectionError::UnsupportedApi {
                address: self.address.clone(),
                api,
                broker: theirs.map_or("none".to_string(), |t| t.to_string()),
                client: ours.to_string(),
            }),
        }
    }

    /// Sends a request at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, body: &R) -> Result<R::Response, ConnectionError> {
        let version = self.version_for::<R>()?;
        self.send_version(body, version).await
    }

    /// Sends a request at an explicit version and waits for its response.
    pub async fn send_version<R: Request>(
        &self,
        body: &R,
        version: i16,
    ) -> Result<R::Response, ConnectionError> {
        let api = api_key::<R>();
        let frame = self.round_trip(api, version, body).await?;
        let (_, body) = codec::split_response(api, version, frame).map_err(|source| {
            ConnectionError::Codec {
                address: self.address.clone(),
                source,
            }
        })?;
        codec::decode_body(api, version, body).map_err(|source| ConnectionError::Codec {
            address: self.address.clone(),
            source,
        })
    }

    #[instrument(level = "trace", skip(self, body), fields(address = %self.address))]
    async fn round_trip<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<Bytes, ConnectionError> {
        let correlation_id = self
            .next_correlation_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| {
                Some(if id == i32::MAX { 1 } else { id + 1 })
            })
            .unwrap_or(1);
        let frame = codec::encode_request(api, version, correlation_id, &self.client_id, body)
            .map_err(|source| ConnectionError::Codec {
                address: self.address.clone(),
                source,
            })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(reason) = &shared.closed {
                return Err(self.closed_error(api, reason.clone()));
            }
            shared.pending.insert(correlation_id, tx);
        }
        let exchange = async {
            {
                let mut writer = self.writer.lock().await;
                let written = async {
                    writer.write_all(&frame).await?;
                    writer.flush().await
                }
                .await;
                if let Err(source) = written {
                    self.close(&format!("write failed: {source}"));
                    return Err(ConnectionError::Send {
                        address: self.address.clone(),
                        api,
                        source,
                    });
                }
            }
            match rx.await {
                Ok(Ok(frame)) => Ok(frame),
                Ok(Err(reason)) => Err(self.closed_error(api, reason)),
                Err(_) => Err(self.closed_error(api, "the reader stopped".to_string())),
            }
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                self.shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pending
                    .remove(&correlation_id);
                self.close(&format!("{api:?} request timed out"));
                Err(ConnectionError::RequestTimeout {
                    address: self.address.clone(),
                    api,
                    after: self.request_timeout,
                })
            }
        }
    }

    fn closed_error(&self, api: ApiKey, reason: String) -> ConnectionError {
        let hint = if reason.contains("expects TLS") {
            String::new()
        } else if api == ApiKey::ApiVersions && !self.security_protocol.uses_tls() {
            "; if the listener uses TLS, set security.protocol=SSL or SASL_SSL".to_string()
        } else if api == ApiKey::ApiVersions {
            "; check that the listener uses security.protocol ".to_string()
                + self.security_protocol.as_str()
        } else if !self.security_protocol.uses_sasl()
            && matches!(api, ApiKey::Metadata | ApiKey::DescribeCluster)
        {
            "; if the listener requires SASL, set security.protocol=SASL_PLAINTEXT or SASL_SSL and credentials".to_string()
        } else {
            String::new()
        };
        ConnectionError::Closed {
            address: self.address.clone(),
            api,
            reason,
            hint,
        }
    }

    /// Closes the connection: pending and future requests fail with `reason`.
    pub fn close(&self, reason: &str) {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .close(reason);
        self.reader.abort();
    }

    /// ApiVersions: learn the broker's version ranges. Starts at our highest version; a broker
    /// that does not know it answers UNSUPPORTED_VERSION with a v0 body listing its own range,
    /// and we retry at the highest common version.
    async fn negotiate_versions(&self) -> Result<(), ConnectionError> {
        let ours = ApiVersionsRequest::VERSIONS;
        let mut version = ours.max;
        for _ in 0..2 {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("kpilot"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let frame = self
                .round_trip(ApiKey::ApiVersions, version, &request)
                .await?;
            let codec_error = |source| ConnectionError::Codec {
                address: self.address.clone(),
                source,
            };
            let (_, body) =
                codec::split_response(ApiKey::ApiVersions, version, frame).map_err(codec_error)?;
            let error_code = body.clone().try_get_i16().unwrap_or(0);
            let decode_version = if error_code == KafkaErrorCode::UnsupportedVersion.code() {
                0
            } else {
                version
            };
            let response: ApiVersionsResponse =
                codec::decode_body(ApiKey::ApiVersions, decode_version, body)
                    .map_err(codec_error)?;
            let ranges: BTreeMap<i16, VersionRange> = response
                .api_keys
                .iter()
                .map(|k| {
                    (
                        k.api_key,
                        VersionRange {
                            min: k.min_version,
                            max: k.max_version,
                        },
                    )
                })
                .collect();
            match KafkaErrorCode::from_code(response.error_code) {
                None => {
                    debug!(address = %self.address, apis = ranges.len(), "negotiated API versions");
                    *self.versions.lock().unwrap_or_else(|e| e.into_inner()) = ranges;
                    return Ok(());
                }
                Some(KafkaErrorCode::UnsupportedVersion) => {
                    let theirs = ranges.get(&(ApiKey::ApiVersions as i16)).copied();
                    let common = theirs.map(|t| t.intersect(&ours));
                    match common {
                        Some(c) if !c.is_empty() && c.max < version => version = c.max,
                        _ => {
                            return Err(ConnectionError::UnsupportedApi {
                                address: self.address.clone(),
                                api: ApiKey::ApiVersions,
                                broker: theirs.map_or("none".into(), |t| t.to_string()),
                                client: ours.to_string(),
                            });
                        }
                    }
                }
                Some(error) => {
                    return Err(ConnectionError::ApiVersions {
                        address: self.address.clone(),
                        error,
                    });
                }
            }
        }
        Err(ConnectionError::ApiVersions {
            address: self.address.clone(),
            error: KafkaErrorCode::UnsupportedVersion,
        })
    }

    /// SaslHandshake + SaslAuthenticate for PLAIN or SCRAM.
    async fn authenticate(&self, credentials: &SaslCredentials) -> Result<(), ConnectionError> {
        let mechanism = credentials.mechanism;
        let handshake: SaslHandshakeResponse = self
            .send(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism.as_str())),
            )
            .await?;
        match KafkaErrorCode::from_code(handshake.error_code) {
            None => {}
            Some(KafkaErrorCode::UnsupportedSaslMechanism) => {
                return Err(ConnectionError::SaslMechanismNotEnabled {
                    address: self.address.clone(),
                    mechanism,
                    enabled: handshake
                        .mechanisms
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(error) => {
                return Err(self.auth_failed(credentials, error.to_string()));
            }
        }
        match mechanism {
            SaslMechanism::Plain => {
                let token = scram::plain_message(&credentials.username, &credentials.password);
                self.sasl_step(credentials, token).await?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                let nonce =
                    scram::random_nonce().map_err(|e| ConnectionError::Random(e.to_string()))?;
                let mut client = ScramClient::new(
                    hash,
                    &credentials.username,
                    credentials.password.clone(),
                    nonce,
                );
                let scram_error = |source| ConnectionError::Scram {
                    address: self.address.clone(),
                    source,
                };
                let server_first = self
                    .sasl_step(credentials, client.client_first().into_bytes())
                    .await?;
                let client_final = client
                    .handle_server_first(&String::from_utf8_lossy(&server_first))
                    .map_err(scram_error)?;
                let server_final = self
                    .sasl_step(credentials, client_final.into_bytes())
                    .await?;
                client
                    .handle_server_final(&String::from_utf8_lossy(&server_final))
                    .map_err(scram_error)?;
            }
        }
        debug!(address = %self.address, %mechanism, "SASL authentication succeeded");
        Ok(())
    }

    async fn sasl_step(
        &self,
        credentials: &SaslCredentials,
        token: Vec<u8>,
    ) -> Result<Bytes, ConnectionError> {
        let response: SaslAuthenticateResponse = self
            .send(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)))
            .await
            .map_err(|e| match e {
                // Kafka closes the connection right after a failed authentication on old
                // protocol versions; report it as a failed authentication.
                ConnectionError::Closed { reason, .. } => self.auth_failed(
                    credentials,
                    format!("the broker closed the connection ({reason})"),
                ),
                other => other,
            })?;
        if let Some(error) = KafkaErrorCode::from_code(response.error_code) {
            let message = response
                .error_message
                .as_ref()
                .map_or_else(|| error.to_string(), |m| m.to_string());
            return Err(self.auth_failed(credentials, message));
        }
        Ok(response.auth_bytes)
    }

    fn auth_failed(&self, credentials: &SaslCredentials, message: String) -> ConnectionError {
        ConnectionError::AuthenticationFailed {
            address: self.address.clone(),
            mechanism: credentials.mechanism,
            username: credentials.username.clone(),
            message,
        }
    }
}

fn tls_hint(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        "; the broker's certificate is not signed by a trusted CA: set ssl.truststore.location (PEM) to the cluster's CA".to_string()
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        "; the certificate does not name this host: connect by a name it lists, or set ssl.endpoint.identification.algorithm= (empty) to skip the host name check".to_string()
    } else if lower.contains("corrupt message")
        || lower.contains("invalidcontenttype")
        || lower.contains("eof")
        || lower.contains("invalid message")
    {
        "; the listener may not use TLS: check security.protocol (PLAINTEXT or SASL_PLAINTEXT)"
            .to_string()
    } else {
        String::new()
    }
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("every kafka-protocol request type has a known API key")
}

async fn read_loop(
    mut reader: ReadHalf<Box<dyn Stream>>,
    shared: Arc<Mutex<Shared>>,
    address: BrokerAddress,
) {
    let reason = loop {
        let mut prefix = [0u8; 4];
        if let Err(e) = reader.read_exact(&mut prefix).await {
            break if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the broker closed the connection".to_string()
            } else {
                format!("read failed: {e}")
            };
        }
        let length = match codec::frame_length(prefix) {
            Ok(length) => length,
            Err(e) => break e.to_string(),
        };
        let mut frame = vec![0u8; length];
        if let Err(e) = reader.read_exact(&mut frame).await {
            break format!("read failed in the middle of a response: {e}");
        }
        let Some(correlation_id) = codec::correlation_id(&frame) else {
            break "response without a correlation id".to_string();
        };
        let waiter = shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending
            .remove(&correlation_id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(Bytes::from(frame)));
            }
            None => {
                debug!(%address, correlation_id, "dropping a response nobody waits for (timed out?)")
            }
        }
    };
    debug!(%address, %reason, "connection closed");
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .close(&reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::decode_request_header_from_buffer;
    use tokio::io::DuplexStream;

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            security_protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
            client_id: "test".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_millis(500),
        }
    }

    async fn read_request(server: &mut DuplexStream) -> (i16, i16, i32, Bytes) {
        let mut prefix = [0u8; 4];
        server.read_exact(&mut prefix).await.unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
        server.read_exact(&mut frame).await.unwrap();
        let mut buf = Bytes::from(frame);
        let header = decode_request_header_from_buffer(&mut buf).unwrap();
        (
            header.request_api_key,
            header.request_api_version,
            header.correlation_id,
            buf,
        )
    }

    async fn write_response<R: Encodable>(
        server: &mut DuplexStream,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, api.response_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        server
            .write_all(&(buf.len() as i32).to_be_bytes())
            .await
            .unwrap();
        server.write_all(&buf).await.unwrap();
    }

    fn api_versions(max_metadata: i16) -> ApiVersionsResponse {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(0)
                .with_max_version(3),
            ApiVersion::default()
                .with_api_key(ApiKey::Metadata as i16)
                .with_min_version(0)
                .with_max_version(max_metadata),
        ])
    }

    /// A fake broker that only knows ApiVersions v0-3: our v4 request gets UNSUPPORTED_VERSION
    /// (v0 body), we retry at v3, then Metadata goes at the broker's highest version.
    #[tokio::test]
    async fn negotiates_down_to_the_brokers_versions() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let conn = Connection::start(BrokerAddress::new("fake", 1), Box::new(client), &settings());
        let broker = tokio::spawn(async move {
            let (key, version, id, _) = read_request(&mut server).await;
            assert_eq!((key, version), (ApiKey::ApiVersions as i16, 4));
            let rejected =
                api_versions(9).with_error_code(KafkaErrorCode::UnsupportedVersion.code());
            write_response(&mut server, ApiKey::ApiVersions, 0, id, &rejected).await;
            let (key, version, id, _) = read_request(&mut server).await;
            assert_eq!((key, version), (ApiKey::ApiVersions as i16, 3));
            write_response(&mut server, ApiKey::ApiVersions, 3, id, &api_versions(9)).await;
            let (key, version, id, _) = read_request(&mut server).await;
            assert_eq!((key, version), (ApiKey::Metadata as i16, 9));
            let response = MetadataResponse::default()
                .with_cluster_id(Some(StrBytes::from_static_str("fake-cluster")));
            write_response(&mut server, ApiKey::Metadata, 9, id, &response).await;
            server
        });
        conn.negotiate_versions().await.unwrap();
        assert_eq!(conn.version_for::<MetadataRequest>().unwrap(), 9);
        assert!(matches!(
            conn.version_for::<kafka_protocol::messages::DescribeQuorumRequest>(),
            Err(ConnectionError::UnsupportedApi { .. })
        ));
        let metadata = conn.send(&MetadataRequest::default()).await.unwrap();
        assert_eq!(metadata.cluster_id.as_deref(), Some("fake-cluster"));
        broker.await.unwrap();
    }

    /// Responses are matched by correlation id even when they arrive out of order.
    #[tokio::test]
    async fn out_of_order_responses_reach_the_right_request() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let conn = Arc::new(Connection::start(
            BrokerAddress::new("fake", 1),
            Box::new(client),
            &settings(),
        ));
        *conn.versions.lock().unwrap() =
            [(ApiKey::Metadata as i16, VersionRange { min: 0, max: 12 })].into();
        let broker = tokio::spawn(async move {
            let (_, _, first, _) = read_request(&mut server).await;
            let (_, _, second, _) = read_request(&mut server).await;
            for (id, name) in [(second, "second"), (first, "first")] {
                let response = MetadataResponse::default()
                    .with_cluster_id(Some(StrBytes::from_static_str(name)));
                write_response(&mut server, ApiKey::Metadata, 12, id, &response).await;
            }
            server
        });
        let c1 = conn.clone();
        let one = tokio::spawn(async move { c1.send(&MetadataRequest::default()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c2 = conn.clone();
        let two = tokio::spawn(async move { c2.send(&MetadataRequest::default()).await });
        assert_eq!(
            one.await.unwrap().unwrap().cluster_id.as_deref(),
            Some("first")
        );
        assert_eq!(
            two.await.unwrap().unwrap().cluster_id.as_deref(),
            Some("second")
        );
        broker.await.unwrap();
    }

    /// A broker that never answers: the request times out and the connection is closed.
    #[tokio::test]
    async fn silent_broker_times_out_and_closes_the_connection() {
        let (client, _server) = tokio::io::duplex(64 * 1024);
        let conn = Connection::start(
            BrokerAddress::new("silent", 9),
            Box::new(client),
            &settings(),
        );
        *conn.versions.lock().unwrap() =
            [(ApiKey::Metadata as i16, VersionRange { min: 0, max: 12 })].into();
        let started = std::time::Instant::now();
        let err = conn.send(&MetadataRequest::default()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ConnectionError::RequestTimeout {
                    api: ApiKey::Metadata,
                    ..
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            err.to_string(),
            "Metadata request to silent:9 timed out after 500ms"
        );
        assert!(!conn.is_open());
        assert!(matches!(
            conn.send(&MetadataRequest::default()).await,
            Err(ConnectionError::Closed { .. })
        ));
    }

    /// A TLS listener answering a plaintext client: the error says to use TLS.
    #[tokio::test]
    async fn tls_bytes_from_the_peer_explain_themselves() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let conn = Connection::start(
            BrokerAddress::new("tls-only", 9093),
            Box::new(client),
            &settings(),
        );
        let broker = tokio::spawn(async move {
            let _ = read_request(&mut server).await;
            // TLS alert record: handshake_failure.
            server
                .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
                .await
                .unwrap();
            server
        });
        let err = conn.negotiate_versions().await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("tls-only:9093"), "{text}");
        assert!(text.contains("the broker answered with TLS"), "{text}");
        broker.await.unwrap();
    }
}
