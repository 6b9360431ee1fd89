//! The sample `KafkaAutopilot`s in `deploy/examples/` parse into the CRD's types and pass the
//! operator's validation, and the committed CRD is the one the code generates.

use kpilot_kubetest::repo_root;
use kpilot_operator::KafkaAutopilot;
use kpilot_operator::crd::{CRD_FILE, crd_yaml};
use kpilot_operator::validate::validate;

#[test]
fn the_examples_are_valid_autopilots() {
    let catalog = kpilot_capacity::Catalog::builtin().expect("catalog");
    let dir = repo_root().join("deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let ap: KafkaAutopilot =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        validate(&ap.spec, &catalog).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 2, "expected the Strimzi and StatefulSet examples");
}

#[test]
fn the_committed_crds_are_current() {
    for path in ["deploy/crds", "deploy/helm/kpilot/crds"] {
        let file = repo_root().join(path).join(CRD_FILE);
        let committed = std::fs::read_to_string(&file).expect("committed CRD");
        assert_eq!(
            committed,
            crd_yaml(),
            "{} is stale: run scripts/generate",
            file.display()
        );
    }
}
