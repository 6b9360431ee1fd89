//! `kpilot perf` refuses bad input before any client starts. No Kafka needed: port 1 of
//! 127.0.0.1 accepts no connection.

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
