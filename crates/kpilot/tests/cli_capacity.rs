//! End-to-end tests of `kpilot capacity`, `kpilot size` and `kpilot catalog`: the real binary,
//! its output and its exit codes, including every bad-input case issue #2 lists.

mod common;

use common::{kpilot, stderr};

use std::io::Write as _;
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("valid JSON on stdout")
}

#[test]
fn capacity_json_has_the_documented_fields() {
    let o = kpilot(&[
        "capacity",
        "--instance",
        "m7g.large",
        "--brokers",
        "3",
        "--replication-factor",
        "3",
        "--consumer-groups",
        "2",
        "--storage-throughput",
        "250MB/s",
        "--json",
    ]);
    let v = json(&o);
    assert!((v["sustained_limit_mb_per_s"].as_f64().unwrap() - 78.75).abs() < 1e-9);
    assert!((v["recommended_limit_mb_per_s"].as_f64().unwrap() - 63.0).abs() < 1e-9);
    assert_eq!(v["bottleneck"], "storage-link");
    assert!(v["one_broker_down_limit_mb_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["storage"]["throughput_mb_per_s"].as_f64(), Some(250.0));
}

#[test]
fn capacity_table_explains_the_numbers() {
    let o = kpilot(&[
        "capacity",
        "-i",
        "m7g.2xlarge",
        "-b",
        "6",
        "-c",
        "2",
        "--storage-throughput",
        "250MB/s",
        "--ingress",
        "300MB/s",
        "--retention",
        "24h",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "storage  ",
        "<- bottleneck",
        "recommended limit",
        "400",
        "one broker down",
        "at 300 MB/s ingress",
        "retention needs",
        "monthly cost",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn size_returns_ranked_shapes_as_json() {
    let o = kpilot(&[
        "size",
        "--ingress",
        "200MB/s",
        "--consumer-groups",
        "2",
        "--retention",
        "24h",
        "--json",
    ]);
    let v = json(&o);
    let cands = v["candidates"].as_array().unwrap();
    assert!(!cands.is_empty());
    let costs: Vec<f64> = cands
        .iter()
        .map(|c| c["monthly_cost_usd"].as_f64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    for c in cands {
        assert!(c["recommended_limit_mb_per_s"].as_f64().unwrap() >= 200.0);
        assert_eq!(c["brokers"].as_u64().unwrap() % 3, 0);
        assert!(c["bottleneck"].is_string());
    }
    for r in v["rejected_cheaper"].as_array().unwrap() {
        assert!(r["monthly_cost_usd"].as_f64().unwrap() < costs[0]);
        assert!(!r["reasons"].as_array().unwrap().is_empty());
    }
}

#[test]
fn size_honours_constraints_in_the_table() {
    let o = kpilot(&[
        "size",
        "--ingress",
        "1.5GB/s",
        "--families",
        "m7g",
        "--storage",
        "gp3",
        "--zones",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("x m7g."), "{out}");
    assert!(!out.contains("im4gn"), "{out}");
    assert!(out.contains("cheaper shapes rejected"), "{out}");
}

#[test]
fn nothing_fits_exits_one_and_shows_the_closest() {
    let o = kpilot(&["size", "--ingress", "50GB/s", "--max-brokers", "6"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no shape qualifies"), "{}", stdout(&o));
    assert!(stderr(&o).contains("relax a constraint"), "{}", stderr(&o));
}

#[track_caller]
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let o = kpilot(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "args {args:?}: stderr {err}");
    assert!(stdout(&o).is_empty(), "nothing on stdout for {args:?}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_instance_suggests_the_closest_names() {
    assert_usage_error(
        &["capacity", "--instance", "m7g.xlarg", "--brokers", "3"],
        &[
            "unknown instance type 'm7g.xlarg'",
            "did you mean m7g.xlarge",
        ],
    );
    assert_usage_error(
        &["capacity", "--instance", "m7gxlarge", "--brokers", "3"],
        &["expected FAMILY.SIZE"],
    );
}

#[test]
fn zero_and_negative_rates_are_refused() {
    assert_usage_error(&["size", "--ingress", "0MB/s"], &["above zero"]);
    assert_usage_error(&["size", "--ingress", "-5MB/s"], &["negative"]);
    assert_usage_error(
        &[
            "capacity",
            "-i",
            "m7g.large",
            "-b",
            "3",
            "--ingress",
            "0MB/s",
        ],
        &["--ingress must be above zero"],
    );
}

#[test]
fn replication_factor_above_broker_count_is_refused() {
    assert_usage_error(
        &["capacity", "-i", "m7g.large", "-b", "2", "-r", "3"],
        &["replication factor 3 is above the broker count 2"],
    );
}

#[test]
fn unparsable_units_are_refused_with_the_value() {
    assert_usage_error(&["size", "--ingress", "200"], &["'200' has no unit"]);
    assert_usage_error(&["size", "--ingress", "200mb/s"], &["ambiguous"]);
    assert_usage_error(
        &["size", "--ingress", "200MB/s", "--retention", "3y"],
        &["unknown unit 'y'"],
    );
    assert_usage_error(&["size", "--ingress", "fastMB/s"], &["'fastMB/s'"]);
}

#[test]
fn catalog_with_a_missing_field_names_file_line_and_field() {
    let export = kpilot(&["catalog", "--export"]);
    assert!(export.status.success());
    let text = stdout(&export).replacen("vcpu = 4, memory_gib = 16, ", "memory_gib = 16, ", 1);
    let mut file = tempfile();
    file.1.write_all(text.as_bytes()).expect("write catalog");
    let path = file.0.to_str().expect("utf-8 path").to_string();
    assert_usage_error(
        &["capacity", "-i", "m7g.large", "-b", "3", "--catalog", &path],
        &[&path, "line ", "missing field `vcpu`"],
    );
    // The same file fixed works.
    std::fs::write(&file.0, stdout(&export)).expect("write");
    let o = kpilot(&[
        "capacity",
        "-i",
        "m7g.large",
        "-b",
        "3",
        "--catalog",
        &path,
        "--json",
    ]);
    assert_eq!(json(&o)["catalog"].as_str(), Some(path.as_str()));
    let _ = std::fs::remove_file(&file.0);
}

#[test]
fn missing_catalog_file_is_a_clear_error() {
    assert_usage_error(
        &[
            "size",
            "--ingress",
            "1MB/s",
            "--catalog",
            "/nonexistent/cat.toml",
        ],
        &["cannot read catalog file /nonexistent/cat.toml"],
    );
}

/// A bad catalog path from `KPILOT_CATALOG` said "cannot read catalog file nope.toml" without
/// a word of the variable (and an empty one, "a value is required for '--catalog'").
#[test]
fn a_bad_catalog_path_says_where_it_came_from() {
    let with_env = |value: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kpilot"))
            .args(args)
            .env("KPILOT_CATALOG", value)
            .output()
            .expect("run kpilot")
    };
    let capacity = ["capacity", "-i", "m7g.large", "-b", "3"];
    let o = with_env("/nonexistent/cat.toml", &capacity);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: cannot use the catalog file /nonexistent/cat.toml named by the KPILOT_CATALOG environment variable; fix the file or the variable, or unset KPILOT_CATALOG to use the built-in catalog\n  caused by: cannot read catalog file /nonexistent/cat.toml: No such file or directory (os error 2)\n"
    );
    // The flag wins over the variable, and is named.
    let o = with_env(
        "/nonexistent/cat.toml",
        &[&capacity[..], &["--catalog", "/nonexistent/cat.toml"][..]].concat(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: cannot use the catalog file /nonexistent/cat.toml given with --catalog; fix the file or the path, or leave --catalog out to use the built-in catalog\n"),
        "{}",
        stderr(&o)
    );
    let o = with_env("", &capacity);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the path is empty (is KPILOT_CATALOG set to nothing?): name a catalog TOML file, or unset KPILOT_CATALOG to use the built-in catalog"),
        "{}",
        stderr(&o)
    );
}

/// The burst line read "for ~35 min on full credits (bottleneck: storage)" for gp3 volumes,
/// which have no credits: the 35 minutes are the instance's network credits.
#[test]
fn the_burst_limit_names_whose_credits_run_out() {
    let o = kpilot(&[
        "capacity",
        "--instance",
        "m7g.large",
        "--brokers",
        "3",
        "--consumer-groups",
        "2",
        "--storage-throughput",
        "250MB/s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\nburst limit         250  for ~35 min on full credits, until the network credits of m7g.large run out (bottleneck meanwhile: storage)\n"),
        "{}",
        stdout(&o)
    );
    let o = kpilot(&[
        "capacity",
        "--instance",
        "m7g.large",
        "--brokers",
        "3",
        "--storage-throughput",
        "250MB/s",
        "--json",
    ]);
    assert_eq!(json(&o)["burst"]["credits_run_out"], "network");
}

#[test]
fn catalog_lists_every_family() {
    let o = kpilot(&["catalog", "--json"]);
    let rows = json(&o);
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instance"].as_str().unwrap())
        .collect();
    for f in [
        "m7g", "c7g", "r7g", "m5", "m6g", "m6i", "i3", "i3en", "i4i", "im4gn", "is4gen",
    ] {
        assert!(names.iter().any(|n| n.starts_with(&format!("{f}."))), "{f}");
    }
    assert_usage_error(
        &["catalog", "--family", "m7"],
        &["unknown instance family 'm7'"],
    );
}

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!(
        "kpilot-test-catalog-{}-{}.toml",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let file = std::fs::File::create(&path).expect("create temp file");
    (path, file)
}

/// `kpilot size --show-rejected 0` listed all 47 rejected cheaper shapes, in the table and in
/// the JSON.
#[test]
fn size_show_rejected_zero_shows_no_rejected_shape() {
    let o = kpilot(&["size", "--ingress", "200MB/s", "--show-rejected", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("cheaper shapes rejected"),
        "{}",
        stdout(&o)
    );
    let v = json(&kpilot(&[
        "size",
        "--ingress",
        "200MB/s",
        "--show-rejected",
        "0",
        "--json",
    ]));
    assert_eq!(v["rejected_cheaper"].as_array().map(Vec::len), Some(0));
    assert!(!v["candidates"].as_array().unwrap().is_empty());
}

/// Constraints that leave nothing to evaluate printed "0 shapes evaluated", "no shape
/// qualifies. The closest:" over an empty table and exited 1: now the reason, and 2.
#[test]
fn size_with_nothing_to_evaluate_says_why() {
    assert_usage_error(
        &[
            "size",
            "--ingress",
            "100MB/s",
            "--families",
            "m7g",
            "--storage",
            "local-nvme",
        ],
        &[
            "error: no shape can be evaluated: m7g has no local NVMe storage; families with local NVMe: i3, i3en, i4i, im4gn, is4gen: add one to --families, or allow volumes (--storage gp3, st1 or io2)",
        ],
    );
    assert_usage_error(
        &[
            "size",
            "--ingress",
            "100MB/s",
            "--zones",
            "7",
            "--max-brokers",
            "6",
        ],
        &[
            "error: no broker count between 3 and 6 is a multiple of 7 zones and at least the replication factor 3; raise --max-brokers to 7 or lower --zones",
        ],
    );
}

/// `--families M7G` was an unknown family (while `-i M7G.LARGE` is m7g.large), `m7g,` an
/// unknown family `''`, and `--sizes xl` an unknown instance type `'*.xl'`.
#[test]
fn families_and_sizes_in_any_case_and_clear_errors_for_empty_or_unknown_names() {
    let v = json(&kpilot(&[
        "size",
        "--ingress",
        "100MB/s",
        "--families",
        "M7G",
        "--sizes",
        "XLarge",
        "--json",
    ]));
    for c in v["candidates"].as_array().unwrap() {
        assert_eq!(c["instance"], "m7g.xlarge");
    }
    assert_eq!(v["request"]["families"][0], "m7g");
    let o = kpilot(&["catalog", "--family", "M7G", "--json"]);
    assert_eq!(json(&o).as_array().map(Vec::len), Some(7));
    assert_usage_error(
        &["size", "--ingress", "100MB/s", "--families", "m7g,"],
        &[
            "error: empty family name in --families 'm7g,': separate the names with single commas, e.g. --families m7g,c7g",
        ],
    );
    assert_usage_error(
        &["catalog", "--family", "m7g,,c7g"],
        &["empty family name in --family 'm7g,,c7g'"],
    );
    assert_usage_error(
        &["size", "--ingress", "100MB/s", "--sizes", "xl"],
        &["error: unknown size 'xl': did you mean xlarge?"],
    );
}

/// Fraction flags took only numbers: "80%" was "invalid float literal".
#[test]
fn fractions_take_percentages() {
    let capacity = |utilization: &str| {
        json(&kpilot(&[
            "capacity",
            "-i",
            "m7g.large",
            "-b",
            "3",
            "--target-utilization",
            utilization,
            "--json",
        ]))
    };
    assert_eq!(capacity("80%"), capacity("0.8"));
    assert_eq!(
        capacity("50%")["recommended_limit_mb_per_s"],
        capacity("0.5")["recommended_limit_mb_per_s"]
    );
    let v = json(&kpilot(&[
        "size",
        "--ingress",
        "100MB/s",
        "--max-disk-fill",
        "70%",
        "--json",
    ]));
    assert_eq!(v["request"]["max_disk_fill"].as_f64(), Some(0.7));
    assert_usage_error(
        &[
            "capacity",
            "-i",
            "m7g.large",
            "-b",
            "3",
            "--max-disk-fill",
            "80 pct",
        ],
        &[
            "invalid value '80 pct' for '--max-disk-fill <FRACTION>': '80 pct' is not a fraction: write it as a number or a percentage, e.g. 0.8 or 80%",
        ],
    );
}

/// Storage flags that the evaluated storage does not use were silently ignored.
#[test]
fn storage_flags_the_storage_does_not_use_are_refused() {
    assert_usage_error(
        &[
            "capacity",
            "-i",
            "im4gn.large",
            "-b",
            "3",
            "--storage-throughput",
            "250MB/s",
        ],
        &[
            "error: --storage-throughput sets a network volume's throughput, but im4gn.large uses its local NVMe; pass --storage gp3 to evaluate a gp3 volume instead",
        ],
    );
    assert_usage_error(
        &[
            "capacity",
            "-i",
            "im4gn.large",
            "-b",
            "3",
            "--storage-size",
            "5TB",
        ],
        &[
            "error: --storage-size sets a network volume's size, but im4gn.large uses its local NVMe (937 GB per broker, fixed by the instance type); pass --storage gp3 to evaluate a gp3 volume instead",
        ],
    );
    assert_usage_error(
        &[
            "capacity",
            "-i",
            "m7g.large",
            "-b",
            "3",
            "--nvme-write-throughput",
            "1GB/s",
        ],
        &[
            "error: --nvme-write-throughput sets the local NVMe disks' write throughput, but m7g.large has no local NVMe (it uses gp3 volumes); drop it, or pick a type with local NVMe (i3, i3en, i4i, im4gn, is4gen)",
        ],
    );
    assert_usage_error(
        &[
            "size",
            "--ingress",
            "100MB/s",
            "--storage",
            "local-nvme",
            "--storage-throughput",
            "250MB/s",
        ],
        &[
            "--storage-throughput sets a network volume's throughput, but --storage local-nvme allows only local NVMe disks",
        ],
    );
    // Where the flags apply they are used.
    let v = json(&kpilot(&[
        "capacity",
        "-i",
        "im4gn.large",
        "-b",
        "3",
        "--storage",
        "gp3",
        "--storage-throughput",
        "250MB/s",
        "--storage-size",
        "2TB",
        "--json",
    ]));
    assert_eq!(v["storage"]["throughput_mb_per_s"].as_f64(), Some(250.0));
    assert_eq!(v["storage"]["size_gb"].as_f64(), Some(2000.0));
}
