//! Bootstrap servers that cannot be used: nothing listening (refused) and a listener that
//! accepts but never answers. Both fail within the configured timeouts (the API timeout
//! bounds the bootstrap rounds) with a message naming the address, and nothing panics. No
//! Kafka needed: the peers are local sockets.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::runtime;
use kpilot_kafka::{AdminClient, AdminError, BrokerAddress, ClientConfig};

fn config(address: BrokerAddress) -> ClientConfig {
    let mut config = ClientConfig::new(vec![address]);
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(2);
    config.api_timeout = Duration::from_secs(10);
    config
}

#[test]
fn nothing_listening_fails_fast_naming_the_address() {
    // Bind then drop to get a port that is very likely closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = BrokerAddress::new("127.0.0.1", port);
    let started = Instant::now();
    let err = runtime()
        .block_on(AdminClient::connect(config(address.clone())))
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, AdminError::Bootstrap { .. }), "{err:?}");
    assert!(
        text.starts_with(&format!("cannot reach any bootstrap server ({address})")),
        "{text}"
    );
    assert!(
        text.contains(&format!("cannot connect to {address}")),
        "{text}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "gave up after {elapsed:?}"
    );
    eprintln!("{text} ({elapsed:?})");
}

#[test]
fn silent_listener_times_out_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = BrokerAddress::new("127.0.0.1", listener.local_addr().unwrap().port());
    // Accept connections and hold them open without ever answering.
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let started = Instant::now();
    let err = runtime()
        .block_on(AdminClient::connect(config(address.clone())))
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.contains(&address.to_string()), "{text}");
    assert!(
        text.contains("timed out after 2s (during ApiVersions)")
            && text.contains("the listener may expect TLS"),
        "{text}"
    );
    // 3 rounds of one 2 s connect timeout each, plus backoff, within the 10 s API timeout.
    assert!(
        elapsed < Duration::from_secs(8),
        "gave up after {elapsed:?}"
    );
    eprintln!("{text} ({elapsed:?})");
    // The API timeout bounds the rounds: one that has passed after the first round's 2 s
    // connect timeout starts no second round (three would take 6 s).
    let mut short = config(address.clone());
    short.api_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = runtime().block_on(AdminClient::connect(short)).unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, AdminError::Bootstrap { .. }), "{err:?}");
    assert!(
        elapsed < Duration::from_secs(4),
        "one round only, gave up after {elapsed:?}"
    );
    drop(holder);
}

#[test]
fn invalid_configuration_is_rejected_before_connecting() {
    let err = runtime()
        .block_on(AdminClient::connect(ClientConfig::default()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no bootstrap servers: pass --bootstrap HOST:PORT or set bootstrap.servers in the client config file"
    );
}
