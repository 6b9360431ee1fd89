//! Integration test: the `SASL_SSL` listener of a real single-node cluster accepts each SASL
//! mechanism's user over TLS verified against the generated CA, and refuses a wrong password
//! and a client that does not trust the CA. Starts JVMs on 127.0.0.1.

mod common;

use std::fs;
use std::net::TcpStream;
use std::time::Instant;

use common::{TOPIC_COMMAND, tool, tool_ok};
use kpilot_testbed::{ClusterConfig, KafkaCluster, SaslMechanism};

#[test]
fn secure_listener_authenticates_every_mechanism() {
    let t = Instant::now();
    let cluster = KafkaCluster::start(ClusterConfig {
        brokers: 1,
        secure: true,
        ..ClusterConfig::default()
    })
    .expect("start a secure single-node cluster");
    eprintln!(
        "KafkaCluster::start (1 secure broker) took {:?}",
        t.elapsed()
    );

    let secure = cluster.secure_bootstrap().expect("secure bootstrap");
    assert_eq!(Some(secure.clone()), cluster.secure_broker_address(1));
    assert_ne!(secure, cluster.bootstrap());
    assert!(
        TcpStream::connect(secure.as_str()).is_ok(),
        "SASL_SSL port answers"
    );
    let security = cluster.security().expect("secure listener details");
    let ca = fs::read_to_string(&security.ca_cert_pem).expect("CA PEM");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(security.users.len(), 3);

    // Each mechanism's user creates a topic over SASL_SSL.
    for mechanism in SaslMechanism::ALL {
        let user = security.user(mechanism).expect("a user per mechanism");
        assert!(!user.password.is_empty());
        let config = security.client_properties(mechanism);
        let topic = format!("secure-{}", mechanism.kafka_name().to_ascii_lowercase());
        let out = tool_ok(
            &cluster,
            TOPIC_COMMAND,
            &[
                "--bootstrap-server",
                &secure,
                "--command-config",
                config.to_str().expect("utf-8 path"),
                "--create",
                "--topic",
                &topic,
            ],
        );
        assert!(out.contains("Created topic"), "{mechanism}: {out}");
    }
    let listed = tool_ok(
        &cluster,
        TOPIC_COMMAND,
        &["--bootstrap-server", &cluster.bootstrap(), "--list"],
    );
    for topic in [
        "secure-plain",
        "secure-scram-sha-256",
        "secure-scram-sha-512",
    ] {
        assert!(listed.lines().any(|l| l == topic), "{topic} in:\n{listed}");
    }

    // A wrong SCRAM password is refused.
    let good =
        fs::read_to_string(security.client_properties(SaslMechanism::ScramSha256)).expect("props");
    let user = security.user(SaslMechanism::ScramSha256).expect("user");
    let bad_path = cluster.dir().join("bad-password.properties");
    fs::write(&bad_path, good.replace(&user.password, "wrong-password")).expect("write props");
    let out = tool(
        &cluster,
        TOPIC_COMMAND,
        &[
            "--bootstrap-server",
            &secure,
            "--command-config",
            bad_path.to_str().expect("utf-8 path"),
            "--list",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "wrong password must fail:\n{text}");
    assert!(text.contains("Authentication failed"), "{text}");

    // A client that does not trust the generated CA fails the TLS handshake.
    let untrusting: String = good
        .lines()
        .filter(|l| !l.starts_with("ssl.truststore"))
        .map(|l| format!("{l}\n"))
        .collect();
    let untrusting_path = cluster.dir().join("no-ca.properties");
    fs::write(&untrusting_path, untrusting).expect("write props");
    let out = tool(
        &cluster,
        TOPIC_COMMAND,
        &[
            "--bootstrap-server",
            &secure,
            "--command-config",
            untrusting_path.to_str().expect("utf-8 path"),
            "--list",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "an untrusted certificate must fail:\n{text}"
    );
    assert!(
        text.contains("SSL handshake failed") || text.contains("PKIX"),
        "{text}"
    );
}
