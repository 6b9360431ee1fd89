//! `kpilot operator` refuses an incomplete pvc-releaser configuration before it connects to
//! anything (exit code 2, naming the missing flag).

mod common;

use common::kpilot;

#[test]
fn the_pvc_releaser_needs_a_scope_and_a_safety_gate() {
    let out = kpilot(&["operator", "--controllers", "pvc-releaser"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--releaser-storage-classes"), "{err}");

    let out = kpilot(&[
        "operator",
        "--controllers",
        "autopilot,pvc-releaser",
        "--releaser-storage-classes",
        "local-nvme",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--releaser-bootstrap") && err.contains("--releaser-no-kafka-check"),
        "{err}"
    );

    let out = kpilot(&["operator", "--controllers", "pvc-releasr"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pvc-releaser"),
        "the valid names are listed: {err}"
    );
}
