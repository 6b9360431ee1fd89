//! Certificates, keys and access tokens for one test control plane, generated in memory: a CA,
//! the API server's serving certificate (127.0.0.1 / localhost), the service-account signing
//! key pair and random bearer tokens. No I/O (the caller writes the PEM files).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::KubetestError;

/// The PEM documents and tokens of one control plane. Secrets: never log them.
pub(crate) struct Pki {
    /// The CA certificate clients trust (`certificate-authority` in the kubeconfig).
    pub(crate) ca_cert_pem: String,
    /// The API server's serving certificate, signed by the CA.
    pub(crate) serving_cert_pem: String,
    /// The serving certificate's private key (PKCS#8).
    pub(crate) serving_key_pem: String,
    /// The service-account token signing key (PKCS#8).
    pub(crate) sa_key_pem: String,
    /// Its public key (SubjectPublicKeyInfo), for verifying tokens.
    pub(crate) sa_public_pem: String,
    /// Bearer token of the admin identity (group `system:masters`).
    pub(crate) admin_token: String,
    /// Bearer token of the restricted identity (no role bindings).
    pub(crate) restricted_token: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn pki_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> KubetestError {
    move |source| KubetestError::GeneratePki { what, source }
}

impl Pki {
    /// Generates fresh keys (ECDSA P-256), certificates and tokens.
    pub(crate) fn generate() -> Result<Self, KubetestError> {
        let ca_key = KeyPair::generate().map_err(pki_err("CA key"))?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("kpilot-kubetest-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(pki_err("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().map_err(pki_err("serving key"))?;
        let mut serving = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])
        .map_err(pki_err("serving certificate names"))?;
        serving.distinguished_name = name("kube-apiserver");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .map_err(pki_err("serving certificate"))?;

        let sa_key = KeyPair::generate().map_err(pki_err("service-account signing key"))?;
        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            sa_public_pem: sa_key.public_key_pem(),
            sa_key_pem: sa_key.serialize_pem(),
            admin_token: random_token()?,
            restricted_token: random_token()?,
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 32 random bytes, hex-encoded.
fn random_token() -> Result<String, KubetestError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KubetestError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_distinct_pem_documents_and_tokens() {
        let pki = Pki::generate().expect("generate");
        assert!(pki.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            pki.serving_cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_ne!(pki.ca_cert_pem, pki.serving_cert_pem);
        assert!(
            pki.serving_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(pki.sa_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(pki.sa_public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(pki.admin_token.len(), 64);
        assert_ne!(pki.admin_token, pki.restricted_token);
        assert!(
            !format!("{pki:?}").contains(&pki.admin_token),
            "Debug must not leak tokens"
        );
    }
}
