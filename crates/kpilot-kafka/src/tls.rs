//! TLS client configuration with rustls (ring provider): trusted CAs from a PEM file, inline PEM
//! or the system store; optional host name checks (`ssl.endpoint.identification.algorithm`);
//! optional client certificate. Performs I/O: reads the PEM files it is pointed at.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::{CaSource, TlsSettings};

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}: {message}")]
    ReadPem {
        /// What the file should hold ("CA certificates", "client certificate chain"...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The trust source holds no usable certificate.
    #[error(
        "no CA certificate found in {source_name}; point ssl.truststore.location (or ssl.ca.location) at a PEM file with the cluster's CA"
    )]
    NoCaCertificates {
        /// The file, `inline PEM` or `the system trust store`.
        source_name: String,
    },
    /// rustls refused the configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Build(String),
}

/// Builds a rustls client configuration from the settings.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_store(&settings.ca)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Build(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.verify_hostname {
        webpki
    } else {
        Arc::new(SkipHostnameVerifier { inner: webpki })
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.client_certificate {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = read_certs(&client.certificate_chain, "client certificate chain")?;
            let key = PrivateKeyDer::from_pem_file(&client.private_key).map_err(|e| {
                TlsError::ReadPem {
                    what: "client private key",
                    path: client.private_key.clone(),
                    message: e.to_string(),
                }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Build(e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |message: String| TlsError::ReadPem {
        what,
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(read_error(
            "no `BEGIN CERTIFICATE` block in the file".to_string(),
        ));
    }
    Ok(certs)
}

fn root_store(ca: &CaSource) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let source_name = match ca {
        CaSource::PemFile(path) => {
            let certs = read_certs(path, "CA certificates")?;
            roots.add_parsable_certificates(certs);
            path.display().to_string()
        }
        CaSource::PemText(text) => {
            let certs = CertificateDer::pem_slice_iter(text.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::ReadPem {
                    what: "CA certificates",
                    path: PathBuf::from("ssl.truststore.certificates"),
                    message: e.to_string(),
                })?;
            roots.add_parsable_certificates(certs);
            "ssl.truststore.certificates".to_string()
        }
        CaSource::System => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "skipping a system CA certificate");
            }
            roots.add_parsable_certificates(found.certs);
            "the system trust store".to_string()
        }
    };
    if roots.is_empty() {
        return Err(TlsError::NoCaCertificates { source_name });
    }
    Ok(roots)
}

/// Verifies the chain but accepts a certificate that does not name the host
/// (`ssl.endpoint.identification.algorithm=` empty, as Kafka clients allow).
#[derive(Debug)]
struct SkipHostnameVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for SkipHostnameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_ca_files_are_explained() {
        let settings = TlsSettings {
            ca: CaSource::PemFile("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let err = client_config(&settings).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read CA certificates from /nonexistent/ca.pem"),
            "{err}"
        );
        let settings = TlsSettings {
            ca: CaSource::PemText("not a certificate".into()),
            ..TlsSettings::default()
        };
        let err = client_config(&settings).unwrap_err();
        assert!(matches!(err, TlsError::NoCaCertificates { .. }), "{err}");
    }
}
