//! Workload files as users write them: the shipped examples parse into the documented runs,
//! and invalid files are rejected with the file, the line, the key and the reason.

use std::path::{Path, PathBuf};

use kpilot_perf::file::{self, WorkloadFileError};
use kpilot_perf::workload::{Problem, Rate};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/perf")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn every_example_parses_into_bounded_runs() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).expect("examples/perf exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let runs = file::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!runs.is_empty());
        for r in &runs {
            assert!(
                r.max_duration().as_secs() <= 6 * 3600,
                "{}: {:?}",
                path.display(),
                r.max_duration()
            );
        }
        seen += 1;
    }
    assert!(seen >= 4, "examples found: {seen}");
}

#[test]
fn the_sizing_guide_example_matches_the_guide() {
    let runs = file::load(&examples().join("sizing-guide.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.len(), 2, "batch_size: [256KiB, 512KiB]");
    let w = &runs[1];
    assert_eq!(
        (w.producers, w.consumer_groups, w.consumers_per_group),
        (6, 2, 6)
    );
    assert_eq!(w.replication_factor, 3);
    assert_eq!(w.producer.batch_size, Some(512 * 1024));
    assert_eq!(w.producer.linger_ms, Some(5.0));
    assert!(w.credit_depletion.is_some());
    assert!(matches!(w.steps[0].rate, Rate::Bytes(_)));
    assert_eq!(
        w.labels,
        vec![("producer.batch_size".to_string(), "512KiB".to_string())]
    );
}

#[test]
fn compression_example_expands_to_six_runs() {
    let runs = file::load(&examples().join("compression.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.len(), 6);
}

fn rejection(name: &str) -> (WorkloadFileError, String) {
    let err = file::load(&fixture(name)).expect_err("the fixture is invalid");
    let text = err.to_string();
    (err, text)
}

#[test]
fn an_unknown_key_is_rejected_with_file_line_key_and_reason() {
    let (err, text) = rejection("unknown-key.yaml");
    assert_eq!(err.key(), Some("producer.lingr"));
    assert!(matches!(err.problem(), Some(Problem::UnknownKey { .. })));
    assert!(
        text.contains(
            "unknown-key.yaml:6:3: `producer.lingr`: unknown key (did you mean `linger`?)"
        ),
        "{text}"
    );
}

#[test]
fn a_bad_unit_is_rejected_with_file_line_key_and_reason() {
    let (err, text) = rejection("bad-unit.yaml");
    assert_eq!(err.key(), Some("steps.rates"));
    assert!(matches!(err.problem(), Some(Problem::Quantity(_))));
    assert!(text.contains("bad-unit.yaml:4:"), "{text}");
    assert!(text.contains("20Mbps/s"), "{text}");
}

#[test]
fn an_empty_list_is_rejected_with_file_line_key_and_reason() {
    let (err, text) = rejection("empty-list.yaml");
    assert_eq!(err.key(), Some("producers"));
    assert_eq!(err.problem(), Some(&Problem::EmptyList));
    assert!(text.contains("empty-list.yaml:2:"), "{text}");
    assert!(text.contains("empty list"), "{text}");
}

#[test]
fn a_missing_file_says_which() {
    let err = file::load(&fixture("does-not-exist.yaml")).expect_err("missing");
    assert!(err.to_string().contains("does-not-exist.yaml"), "{err}");
}
