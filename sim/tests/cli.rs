//! `crucial-sim` as users run it: `check` verdicts, columns and exit codes; `run` sweeps and
//! the replay command printed for a failing seed; `replay` is deterministic.

mod common;

use common::histories;
use std::process::{Command, Output};

fn crucial_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crucial-sim")).args(args).output().expect("crucial-sim runs")
}

#[test]
fn check_prints_one_verdict_per_file_and_sets_the_exit_status() {
    let Some(root) = histories() else { return };
    let good = root.join("knossos-cas/good/cas-register-bug.edn");
    let bad = root.join("porcupine-etcd/etcd_000.log");
    let output = crucial_sim(&["check", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{}\tlinearizable\n", good.display()));

    let output =
        crucial_sim(&["check", "--model", "cas-register", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{}\tNOT linearizable\n", bad.display())), "{stdout}");
}

#[test]
fn unreadable_input_exits_2_with_the_line_at_fault() {
    let dir = std::env::temp_dir().join(format!("crucial-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.edn");
    std::fs::write(
        &broken,
        "[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 1, :type :oops, :f :read}]",
    )
    .unwrap();
    let output = crucial_sim(&["check", broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2") && stderr.contains(":oops"), "{stderr}");
    let missing = crucial_sim(&["check", dir.join("missing.edn").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn run_passes_on_the_correct_node() {
    let output = crucial_sim(&["run", "--seeds", "20"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("| failures | 0 |"));
}

#[cfg(not(crucial_canary))]
#[test]
fn a_build_without_the_deliberate_bugs_refuses_a_canary_and_says_how_to_get_one() {
    let output = crucial_sim(&["run", "--seeds", "3", "--canary", "stale-reads"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cargo canaryrun"), "{stderr}");
}

#[cfg(crucial_canary)]
#[test]
fn a_canary_run_fails_and_names_the_replay() {
    let report_dir = std::env::temp_dir().join(format!("crucial-sim-reports-{}", std::process::id()));
    let output = crucial_sim(&[
        "run",
        "--seeds",
        "3",
        "--canary",
        "stale-reads",
        "--report-dir",
        report_dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("replay --seed 0") && stderr.contains("--canary stale-reads"), "{stderr}");
    let report =
        std::fs::read_to_string(report_dir.join("violation-seed-0.html")).expect("a report was written");
    assert!(
        report.contains("<svg")
            && report.contains("Longest linearizable prefix")
            && report.contains("cannot be placed")
    );
}

#[test]
fn replay_prints_the_same_trace_for_the_same_seed() {
    let first = crucial_sim(&["replay", "--seed", "7", "--ops", "10"]);
    let second = crucial_sim(&["replay", "--seed", "7", "--ops", "10"]);
    assert!(first.status.success());
    assert_eq!(first.stdout, second.stdout);
    assert!(String::from_utf8_lossy(&first.stdout).contains("trace hash"));
}

#[test]
fn a_recorded_dso_history_can_be_checked_later() {
    let dir = std::env::temp_dir().join(format!("crucial-sim-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    assert!(crucial_sim(&["replay", "--seed", "3", "--history-out", good.to_str().unwrap()])
        .status
        .success());
    let output = crucial_sim(&["check", "--model", "dso", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("good.json\tlinearizable"), "{stdout}");
    assert_eq!(output.status.code(), Some(0));
    let guessed = crucial_sim(&["check", good.to_str().unwrap()]);
    assert_eq!(guessed.status.code(), Some(0), "the model is guessed from the file");
}

#[cfg(crucial_canary)]
#[test]
fn a_recorded_history_of_a_canary_run_is_rejected_later() {
    let dir = std::env::temp_dir().join(format!("crucial-sim-bad-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    let args = ["replay", "--seed", "0", "--canary", "stale-reads", "--history-out", bad.to_str().unwrap()];
    assert_eq!(crucial_sim(&args).status.code(), Some(1));
    let output = crucial_sim(&["check", "--model", "dso", bad.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("bad.json\tNOT linearizable"), "{stdout}");
    assert_eq!(output.status.code(), Some(1));
}
