//! End-to-end tests of `kpilot simulate`: the real binary, its JSON fields, its report file and
//! its exit codes for malformed traces (file, line and reason).

use std::io::Write as _;
use std::process::{Command, Output};

fn kpilot(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpilot"))
        .args(args)
        .current_dir(dir)
        .env_remove("KPILOT_CATALOG")
        .output()
        .expect("run kpilot")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("kpilot-cli-simulate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn json_has_the_documented_fields_and_the_report_is_written() {
    let dir = temp_dir("json");
    let o = kpilot(
        &[
            "simulate",
            "--scenario",
            "weekly",
            "--days",
            "2",
            "--json",
            "--report",
            "r.html",
        ],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    for key in [
        "cost_usd",
        "static_peak_cost_usd",
        "savings_ratio",
        "minutes_over_target",
        "minutes_over_capacity",
        "minutes_over_sustained",
        "scaling_actions",
    ] {
        assert!(v[key].is_number(), "{key} missing in {v}");
    }
    assert_eq!(v["minutes"], 2 * 1440);
    assert!(v["cost_usd"].as_f64().unwrap() < v["static_peak_cost_usd"].as_f64().unwrap());
    let html = std::fs::read_to_string(dir.join("r.html")).expect("the report file");
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg"),
        "{}",
        &html[..200]
    );
    // Self-contained: no scripts, no stylesheets or images fetched from elsewhere (the SVG
    // namespace URI is an identifier, not a resource).
    for external in ["<script", "<link", "src=\"http", "href=\"http", "url(http"] {
        assert!(!html.contains(external), "the report refers to {external}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_default_run_prints_a_summary_table_and_writes_the_default_report() {
    let dir = temp_dir("default");
    let o = kpilot(&["simulate"], &dir);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for word in [
        "policy",
        "reactive",
        "static-peak",
        "oracle bound",
        "savings",
        "min over target",
    ] {
        assert!(out.contains(word), "{word} missing in:\n{out}");
    }
    assert!(dir.join("kpilot-simulation.html").exists());
    let o = kpilot(&["simulate", "--days", "1", "--no-report"], &dir);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_traces_exit_2_with_file_line_and_reason() {
    let dir = temp_dir("bad");
    let cases = [
        ("header.csv", "time,rate\n0,1\n", "header.csv:1: bad header"),
        (
            "number.csv",
            "t_seconds,ingress_mb_per_s\n0,1\n60,fast\n",
            "number.csv:3: ingress_mb_per_s 'fast' is not a number",
        ),
        (
            "back.csv",
            "t_seconds,ingress_mb_per_s\n0,1\n120,1\n60,1\n",
            "back.csv:4: time goes backwards",
        ),
        (
            "negative.csv",
            "t_seconds,ingress_mb_per_s\n0,1\n60,-3\n",
            "negative.csv:3: ingress_mb_per_s -3 is negative",
        ),
        // It said "ingress_mb_per_s '' is not a number".
        (
            "empty.csv",
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,1,2\n60,,2\n",
            "empty.csv:3: the ingress_mb_per_s cell is empty: write a number there (only egress_mb_per_s may be left empty, for unknown)",
        ),
    ];
    for (name, text, want) in cases {
        let mut f = std::fs::File::create(dir.join(name)).expect("trace file");
        f.write_all(text.as_bytes()).expect("write");
        let o = kpilot(&["simulate", "--trace", name, "--no-report"], &dir);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{name}: {}", stderr(&o));
    }
    let o = kpilot(&["simulate", "--trace", "missing.csv", "--no-report"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read trace file missing.csv"),
        "{}",
        stderr(&o)
    );
    // It said "(got 400.0)".
    let o = kpilot(&["simulate", "--history", "400d", "--no-report"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a scenario's history is at most 366 days (got 400d)"),
        "{}",
        stderr(&o)
    );
    let o = kpilot(&["simulate", "--scenario", "nope"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown scenario 'nope'"),
        "{}",
        stderr(&o)
    );
    let o = kpilot(
        &["simulate", "--target-utilization", "1.5", "--no-report"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("target_utilization"), "{}", stderr(&o));
    // Kafka accepts min.insync.replicas = replication factor, but then every roll stops
    // writes: said as such, not as "no shape holds the peak".
    let o = kpilot(
        &["simulate", "--min-insync-replicas", "3", "--no-report"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("min.insync.replicas 3 with replication factor 3 leaves no replica to spare")
            && stderr(&o).contains("use min.insync.replicas 2"),
        "{}",
        stderr(&o)
    );
    // A negative fraction reaches the range check instead of being taken for a flag.
    let o = kpilot(&["simulate", "--safety-margin", "-1", "--no-report"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("safety_margin = -1 is out of range"),
        "{}",
        stderr(&o)
    );
    // So does a negative duration, whose unit keeps clap from reading it as a number.
    let o = kpilot(&["simulate", "--horizon", "-1h", "--no-report"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("duration '-1h' is negative: it must be zero or more"),
        "{}",
        stderr(&o)
    );
    // A horizon or a retention typed in years is refused at once: each once made the run scan
    // that many minutes (a horizon of 1000000d, now refused by the duration parser, never
    // finished; 365d took 7 s).
    let o = kpilot(&["simulate", "--horizon", "3000d", "--no-report"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("policy setting horizon = 259200000 is out of range")
            && stderr(&o).contains("(7 days)"),
        "{}",
        stderr(&o)
    );
    let o = kpilot(&["simulate", "--retention", "36500d", "--no-report"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--retention 36500d is too long: at most 3650d"),
        "{}",
        stderr(&o)
    );
    // Moves that never progress are refused, not simulated for a week.
    let o = kpilot(
        &["simulate", "--actual-move-rate", "0MB/s", "--no-report"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--actual-move-rate"), "{}", stderr(&o));
    // A setup that no shape can run is the user's to change (2), with what to change.
    for (args, says) in [
        (
            &["--storage", "local-nvme"][..],
            "m7g.large has no local NVMe storage",
        ),
        (&["--volume-size", "1GB"][..], "on volumes of 1 GB"),
        (&["--days", "367"][..], "at most 366 days"),
    ] {
        let o = kpilot(&[&["simulate", "--no-report"][..], args].concat(), &dir);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    // A report that could not be written is refused before the run, not after it.
    for (report, says) in [
        (
            "no/such/dir/r.html",
            "the directory no/such/dir does not exist",
        ),
        (".", "is a directory"),
    ] {
        let o = kpilot(&["simulate", "--report", report], &dir);
        assert_eq!(o.status.code(), Some(2), "{report}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{report}: {}", stderr(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--history`: a scenario comes with four weeks of history by default (said in the summary
/// and in the JSON), `--history 0` starts cold; for a trace it is the trace's first part, and
/// asking for all of it is refused with the file and both lengths.
#[test]
fn history_before_the_first_minute() {
    let dir = temp_dir("history");
    let json = |args: &[&str]| -> serde_json::Value {
        let o = kpilot(args, &dir);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("JSON on stdout")
    };
    let base = ["simulate", "--days", "1", "--no-report", "--json"];
    assert_eq!(json(&base)["history_days"], 28.0);
    let cold = json(&[&base[..], &["--history", "0"]].concat());
    assert_eq!(cold["history_days"], 0.0);
    let o = kpilot(&["simulate", "--days", "1", "--no-report"], &dir);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("after 28.0 days of history"), "{out}");

    let mut csv = String::from("t_seconds,ingress_mb_per_s\n");
    for m in 0..(3 * 1440) {
        csv.push_str(&format!("{},{}\n", m * 60, 100 + (m % 1440) / 10));
    }
    std::fs::write(dir.join("three-days.csv"), csv).expect("trace file");
    let trace = [
        "simulate",
        "--trace",
        "three-days.csv",
        "--no-report",
        "--json",
    ];
    let v = json(&[&trace[..], &["--history", "2d"]].concat());
    assert_eq!(
        (v["history_days"].as_f64(), v["minutes"].as_u64()),
        (Some(2.0), Some(1440))
    );
    assert_eq!(json(&trace)["minutes"], 3 * 1440);
    let o = kpilot(&[&trace[..], &["--history", "3d"]].concat(), &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "three-days.csv: the history asked for (4320 min) covers the whole trace (4320 min)"
        ),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kpilot simulate --storage local-nvme --families im4gn --explain WHEN [--json]`.
fn explain_on_local_nvme(when: &str, json: bool, dir: &std::path::Path) -> Output {
    let mut args = vec![
        "simulate",
        "--no-report",
        "--storage",
        "local-nvme",
        "--families",
        "im4gn",
        "--explain",
        when,
    ];
    if json {
        args.push("--json");
    }
    kpilot(&args, dir)
}

/// `--explain` shows the decision the policy made at a time of the run, with every shape it
/// considered: on local NVMe, Tuesday 10:30 is when the closing-window rule starts the move
/// to 9 brokers (see docs/simulation.md), and in JSON the same decision is in `explained`.
#[test]
fn explain_shows_a_decision_with_its_reasons_and_candidates() {
    let dir = temp_dir("explain");
    let o = explain_on_local_nvme("day 1 10:30", false, &dir);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let section = text
        .split_once("Decision at day 1 10:30:")
        .unwrap_or_else(|| panic!("no decision section in:\n{text}"))
        .1;
    for expected in [
        "action: add-brokers to 9 x im4gn.xlarge",
        "safe only while",
        "shapes considered, cheapest first",
        "no plan: reassignment would move data",
        "81 min  feasible",
        "and 5 more expensive shape(s), not evaluated: a cheaper one decided",
    ] {
        assert!(
            section.contains(expected),
            "{expected:?} missing in:\n{section}"
        );
    }

    let o = explain_on_local_nvme("day 1 10:30", true, &dir);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let e = &v["explained"];
    assert_eq!(e["at"], 34.5 * 3600.0, "{e}");
    assert_eq!(e["action"]["action"], "change", "{e}");
    assert_eq!(e["action"]["plan"]["mechanism"], "add-brokers", "{e}");
    assert_eq!(e["action"]["plan"]["to"]["brokers"], 9, "{e}");
    assert!(
        e["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["reason"] == "closing-window")),
        "{e}"
    );
    assert!(
        e["considered"].as_array().is_some_and(|c| c.len() > 3),
        "{e}"
    );
    // Without --explain, no such field.
    let o = kpilot(&["simulate", "--no-report", "--days", "1", "--json"], &dir);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert!(v.get("explained").is_none(), "{v}");
}

/// A decision asked for during a transition is the first one after it, and says so.
#[test]
fn explain_during_a_transition_names_it_and_shows_the_next_decision() {
    let dir = temp_dir("explain-transition");
    let o = explain_on_local_nvme("1 11:00", false, &dir);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("At day 1 11:00 a transition was running (add-brokers to 9 x im4gn.xlarge"),
        "{text}"
    );
    assert!(
        text.contains("(the first at or after day 1 11:00):"),
        "{text}"
    );
}

/// A time that is not one, or is outside the run, exits 2 before anything runs.
#[test]
fn explain_rejects_times_it_cannot_explain() {
    let dir = temp_dir("explain-bad");
    for (when, expected) in [
        (
            "tuesday",
            "\"tuesday\" is not a time: expected \"day D HH:MM\"",
        ),
        ("day 1 25:00", "\"day 1 25:00\" is not a time"),
        ("day 1", "\"day 1\" is not a time"),
        ("2026-02-30 10:00", "\"2026-02-30 10:00\" is not a time"),
        (
            "day 7 00:00",
            "--explain day 7 00:00 is outside the run, which goes from day 0 00:00 to day 7 00:00",
        ),
    ] {
        let o = kpilot(&["simulate", "--no-report", "--explain", when], &dir);
        assert_eq!(o.status.code(), Some(2), "{when}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{when}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{when}");
    }
}

/// A trace in Unix seconds prints its times as UTC dates, and `--explain` takes them back.
#[test]
fn explain_takes_the_utc_dates_a_unix_trace_prints() {
    let dir = temp_dir("explain-unix");
    // 2026-11-22 00:00 UTC, then two days at one-minute steps, a daily curve peaking at 14:00.
    let mut csv = String::from("t_seconds,ingress_mb_per_s\n");
    for m in 0..(2 * 1440) {
        let h = f64::from(m % 1440) / 60.0;
        let rate = 100.0 + 80.0 * ((h - 8.0) / 24.0 * std::f64::consts::TAU).sin();
        csv.push_str(&format!("{},{rate:.1}\n", 1_795_305_600 + m * 60));
    }
    std::fs::write(dir.join("unix.csv"), csv).expect("trace file");
    let run = |when: &str| {
        kpilot(
            &[
                "simulate",
                "--trace",
                "unix.csv",
                "--history",
                "1d",
                "--no-report",
                "--explain",
                when,
            ],
            &dir,
        )
    };
    let o = run("2026-11-23 10:00 UTC");
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Decision at 2026-11-23 10:00 UTC"), "{text}");
    assert!(
        text.contains("shapes considered, cheapest first:"),
        "{text}"
    );
    let o = run("2026-11-22 10:00");
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "--explain 2026-11-22 10:00 UTC is outside the run, which goes from 2026-11-23 00:00 UTC to 2026-11-24 00:00 UTC"
        ),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--explain` a time after the last decision time said "a transition ran until the end of
/// the run" although none was running: the true reason is that the policy decides every 5
/// minutes and no such time is left.
#[test]
fn explain_after_the_last_decision_time_says_so() {
    let dir = temp_dir("explain-last");
    let o = kpilot(
        &[
            "simulate",
            "--no-report",
            "--days",
            "1",
            "--explain",
            "day 0 23:56",
        ],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.ends_with("\nThe policy made no decision at or after day 0 23:56: no decision time (every 5m from the start of the run) falls between day 0 23:56 and the end of the run at day 1 00:00; pick an earlier time.\n"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A trace saved by a spreadsheet as "CSV UTF-8" starts with a byte-order mark: it was
/// refused as "bad header" with a header that looked right.
#[test]
fn a_trace_with_a_byte_order_mark_is_read() {
    let dir = temp_dir("bom");
    std::fs::write(
        dir.join("excel.csv"),
        "\u{feff}t_seconds,ingress_mb_per_s\r\n0,100\r\n3600,120\r\n",
    )
    .expect("trace file");
    let o = kpilot(
        &["simulate", "--trace", "excel.csv", "--no-report", "--json"],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["minutes"], 120);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--days 3` announced "7 days: ... spike ... on Friday 10:00", and `--scenario launch --days
/// 2` a Wednesday launch: the description follows the run's length.
#[test]
fn the_scenario_description_follows_the_days_run() {
    let dir = temp_dir("describe");
    let first_line = |args: &[&str]| {
        let o = kpilot(&[&["simulate", "--no-report"][..], args].concat(), &dir);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        first_line(&["--days", "3"]),
        "Scenario weekly: 3 days (Monday to Wednesday): weekday curve 75 -> 300 MB/s (peak/trough 4), noise; no spike (the unforecast spike is on Friday 10:00, after this run's end: 5 days or more include it)."
    );
    assert_eq!(
        first_line(&["--scenario", "launch", "--days", "2"]),
        "Scenario launch: 2 days (Monday and Tuesday) of the weekly curve with noise; no launch (the new service starts on Wednesday 09:00, after this run's end: 3 days or more include it)."
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--report file.txt/x.html`, `file.txt` a regular file, said "the directory file.txt does
/// not exist; create it first".
#[test]
fn a_report_under_a_file_says_it_is_not_a_directory() {
    let dir = temp_dir("report-under-file");
    std::fs::write(dir.join("file.txt"), "x").expect("a file");
    let o = kpilot(&["simulate", "--report", "file.txt/x.html"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: --report file.txt/x.html: file.txt is a file, not a directory; name a file in an existing directory\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--list-scenarios --json` printed the table.
#[test]
fn list_scenarios_as_json() {
    let dir = temp_dir("list-json");
    let o = kpilot(&["simulate", "--list-scenarios", "--json"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let names: Vec<&str> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["weekly", "steady", "launch"]);
    assert_eq!(
        v[1]["description"],
        "7 days at 150 MB/s with noise, no daily pattern"
    );
    assert_eq!(v[0]["default_days"], 7);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Families in any case, an empty family name refused, percentages for fractions, and storage
/// flags the simulated storage does not use refused instead of ignored.
#[test]
fn families_fractions_and_storage_flags() {
    let dir = temp_dir("flags");
    let json = |args: &[&str]| -> serde_json::Value {
        let o = kpilot(
            &[
                &["simulate", "--no-report", "--days", "1", "--json"][..],
                args,
            ]
            .concat(),
            &dir,
        );
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("JSON on stdout")
    };
    let v = json(&["--families", "M7G"]);
    assert_eq!(v["setup"]["constraints"]["families"][0], "m7g");
    let v = json(&["--target-utilization", "70%", "--safety-margin", "15%"]);
    assert_eq!(v["settings"]["target_utilization"].as_f64(), Some(0.7));
    assert_eq!(
        v["settings"]["forecast"]["safety_margin"].as_f64(),
        Some(0.15)
    );
    for (args, says) in [
        (
            &["--families", "m7g,"][..],
            "error: empty family name in --families 'm7g,': separate the names with single commas, e.g. --families m7g,c7g\n",
        ),
        (
            &[
                "--storage",
                "local-nvme",
                "--families",
                "im4gn",
                "--storage-throughput",
                "250MB/s",
                "--volume-size",
                "1TB",
            ][..],
            "error: --storage-throughput sets a network volume's throughput, but --storage local-nvme puts the data on the instances' local NVMe; drop it, or pass --storage gp3 to simulate gp3 volumes\n",
        ),
        (
            &[
                "--storage",
                "local-nvme",
                "--families",
                "im4gn",
                "--volume-size",
                "1TB",
            ][..],
            "error: --volume-size sets a network volume's size, but --storage local-nvme puts the data on the instances' local NVMe, whose size the instance type fixes; drop it, or pass --storage gp3 to simulate gp3 volumes\n",
        ),
        (
            &["--storage", "st1", "--storage-throughput", "250MB/s"][..],
            "error: --storage-throughput sets a gp3 or io2 volume's provisioned throughput, but --storage st1 is a volume whose throughput follows its size; drop it, and give the size with --volume-size, or pass --storage gp3\n",
        ),
    ] {
        let o = kpilot(&[&["simulate", "--no-report"][..], args].concat(), &dir);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), says, "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A trace with egress: its egress column sets the consumer fan-out minute by minute, so
/// `-c 4` was unused, yet `--json` reported `setup.consumer_fanout: 4.0` and the summary said
/// nothing of it. `-c` is refused with such a trace (2), and both outputs say where the fan-out
/// came from.
#[test]
fn a_trace_with_egress_sets_the_fanout_and_refuses_consumer_groups() {
    let dir = temp_dir("egress");
    let mut csv = String::from("t_seconds,ingress_mb_per_s,egress_mb_per_s\n");
    for (t, i, e) in [
        (0, 100, 200),
        (3600, 150, 300),
        (7200, 120, 180),
        (86_400, 100, 200),
    ] {
        csv.push_str(&format!("{t},{i},{e}\n"));
    }
    std::fs::write(dir.join("eg.csv"), csv).expect("trace file");
    for c in [&["-c", "4"][..], &["--consumer-groups", "1"][..]] {
        let o = kpilot(
            &[&["simulate", "--trace", "eg.csv", "--no-report"][..], c].concat(),
            &dir,
        );
        assert_eq!(o.status.code(), Some(2), "{c:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "--consumer-groups {} is not used with --trace eg.csv: its egress_mb_per_s column sets the consumer fan-out minute by minute (egress / ingress); drop --consumer-groups, or drop the egress column to simulate {} consumer groups",
                c[1], c[1]
            )),
            "{c:?}: {}",
            stderr(&o)
        );
    }
    let o = kpilot(&["simulate", "--trace", "eg.csv", "--no-report"], &dir);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("Trace eg.csv. Its egress column sets the consumer fan-out minute by minute (egress / ingress: 1.5 to 2.0).\n"),
        "{text}"
    );
    let o = kpilot(
        &["simulate", "--trace", "eg.csv", "--no-report", "--json"],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["setup"]["consumer_fanout"], serde_json::Value::Null);
    assert_eq!(v["setup"]["consumer_fanout_source"], "trace-egress");
    // Without egress: the consumer groups, as given.
    std::fs::write(
        dir.join("in.csv"),
        "t_seconds,ingress_mb_per_s\n0,100\n3600,150\n7200,100\n",
    )
    .expect("trace file");
    let o = kpilot(
        &[
            "simulate",
            "--trace",
            "in.csv",
            "--no-report",
            "--json",
            "-c",
            "4",
        ],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["setup"]["consumer_fanout"], 4.0);
    assert_eq!(v["setup"]["consumer_fanout_source"], "consumer-groups");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `setup.storage.volume_gb` was null unless --volume-size was given, though 2800 GB volumes
/// were used (said only inside `static_shape`): it is the size used, null only on local NVMe.
#[test]
fn json_reports_the_volume_size_used() {
    let dir = temp_dir("volume");
    for (args, want) in [
        (&[][..], serde_json::json!(2800.0)),
        (&["--volume-size", "4TB"][..], serde_json::json!(4000.0)),
        (
            &["--storage", "local-nvme", "--families", "im4gn"][..],
            serde_json::Value::Null,
        ),
    ] {
        let o = kpilot(
            &[
                &["simulate", "--days", "1", "--no-report", "--json"][..],
                args,
            ]
            .concat(),
            &dir,
        );
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        assert_eq!(v["setup"]["storage"]["volume_gb"], want, "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text output listed no actions, though `--explain` asked for times "as the actions'
/// times print": `--actions` prints them after the summary, as the HTML report's table has
/// them; without it the output is as before.
#[test]
fn actions_prints_the_policy_actions_after_the_summary() {
    let dir = temp_dir("actions");
    // The run's own duration differs from one run to the next.
    let steady = |o: &Output| -> String {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("simulated 3 x "))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let plain = kpilot(&["simulate", "--days", "1", "--no-report"], &dir);
    assert!(plain.status.success(), "stderr: {}", stderr(&plain));
    let o = kpilot(
        &["simulate", "--days", "1", "--no-report", "--actions"],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let (plain, text) = (steady(&plain), steady(&o));
    assert!(!plain.contains("policy actions:"), "{plain}");
    let section = text
        .strip_prefix(plain.as_str())
        .unwrap_or_else(|| panic!("the summary is not printed first:\n{text}"));
    let lines: Vec<&str> = section.lines().collect();
    assert_eq!(lines[..2], ["", "policy actions:"], "{section}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        [
            "start", "end", "change", "how", "est.", "min", "took", "min", "why"
        ],
        "{section}"
    );
    assert!(
        lines[3].starts_with("day 0 00:00  day 0 00:19  3 x m7g.4xlarge -> 3 x m7g.xlarge, gp3 2800 GB, 524 MB/s   vertical-roll        23        19  current shape holds 419 MB/s, forecast peak until day 0 01:08 is 94.0 MB/s"),
        "{section}"
    );
    // A move up says the forecast passes what the shape holds, not the caveat that its
    // decision lists first (a shape is kept only up to where a roll out of it is safe).
    assert!(
        lines[4].ends_with(
            "forecast peak 125 MB/s until day 0 06:31 is above the 125 MB/s the current shape holds"
        ),
        "{section}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("--explain WHEN (a start above) prints every reason and every shape considered."),
        "{section}"
    );
    // JSON has them in `actions` already.
    let o = kpilot(
        &[
            "simulate",
            "--days",
            "1",
            "--no-report",
            "--actions",
            "--json",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--explain "day 0 06:05"` (a keep on 2xlarge, whose roll out is safe only up to 244 MB/s)
/// said "current shape holds 244 MB/s" over a reason saying it holds 250, and that the shapes
/// not evaluated were left because "a cheaper one decided", though none was chosen.
#[test]
fn explain_of_a_keep_says_what_the_shape_holds_and_why_shapes_were_not_evaluated() {
    let dir = temp_dir("explain-keep");
    let o = kpilot(
        &[
            "simulate",
            "--days",
            "1",
            "--no-report",
            "--explain",
            "day 0 06:05",
        ],
        &dir,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for expected in [
        "  action: keep the current shape\n  current shape holds 250 MB/s, kept up to 244 MB/s at $1.96/h; demand now 107 MB/s;",
        "    - the current shape holds 250 MB/s, but a roll out of it is safe only up to 244 MB/s: it is kept up to 244 MB/s\n",
        "    and 6 more expensive shape(s), not evaluated: the cheaper ones already settled the decision to keep the current shape\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
