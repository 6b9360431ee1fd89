//! `kpilot perf` refuses bad input before any client starts. No Kafka needed: port 1 of
//! 127.0.0.1 accepts no connection, and a listener of the test's own answers like an HTTP
//! server.

mod common;

use common::{kpilot, stderr};

#[test]
fn perf_refuses_bad_input_and_an_unreachable_cluster_at_once() {
    let base = [
        "perf",
        "-b",
        "127.0.0.1:1",
        "--rate",
        "1MB/s",
        "--duration",
        "1s",
    ];
    for (extra, says) in [
        (&["--producers", "257"][..], "1 to 256"),
        (
            &["--consumer-groups", "3", "--consumers-per-group", "100"][..],
            "300 consumers",
        ),
        (
            &["--html", "/nonexistent/dir/r.html"][..],
            "the directory /nonexistent/dir does not exist",
        ),
    ] {
        let o = kpilot(&[&base[..], extra].concat());
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
    }
    // A rate without "/s" listed only the data units, not records or max.
    let o = kpilot(&["perf", "-b", "127.0.0.1:1", "--rate", "5MB"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rate '5MB' has an unknown unit 'MB': use one of B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, Mbit/s, Gbit/s (Mbps, Gbps) for data, msg/s (or /s) for records, or max for no limit"),
        "{}",
        stderr(&o)
    );
    // Nobody listens: the error names the address and its cause, not a topic-creation timeout.
    let o = kpilot(&base);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot reach any bootstrap server: 127.0.0.1:1 (127.0.0.1:1)"),
        "{}",
        stderr(&o)
    );
    // The plan needs no cluster.
    let o = kpilot(&[&base[..], &["--dry-run"][..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn perf_refuses_a_listener_that_does_not_speak_kafka() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Answers every connection (at most 8: the TCP check and the client's attempts) the way
    // an HTTP server answers a Kafka request, then closes it.
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = stream.read(&mut [0; 512]);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let bootstrap = format!("127.0.0.1:{port}");
    let o = kpilot(&[
        "perf",
        "-b",
        &bootstrap,
        "--rate",
        "1MB/s",
        "--duration",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stderr(&o);
    assert!(
        text.contains(&format!(
            "{bootstrap} accepts TCP connections but no server answered as a Kafka broker"
        )) && text.contains("not a Kafka response"),
        "{text}"
    );
    drop(server);
}
