//! The checker's verdict on every real history in `../shared/histories` (Jepsen's etcd tests via
//! Porcupine, Porcupine's kv data, Knossos' cas-register data) matches the known verdict.

mod common;

use common::histories;
use std::time::Duration;

use crucial_sim::checker::Verdict;
use crucial_sim::external::{check_text, ExternalModel};

const EXPECTED: &[(&str, ExternalModel, bool)] = &[
    ("porcupine-etcd/etcd_000.log", ExternalModel::CasRegister, false),
    ("porcupine-etcd/etcd_001.log", ExternalModel::CasRegister, false),
    ("porcupine-etcd/etcd_002.log", ExternalModel::CasRegister, true),
    ("porcupine-etcd/etcd_003.log", ExternalModel::CasRegister, false),
    ("porcupine-etcd/etcd_004.log", ExternalModel::CasRegister, false),
    ("porcupine-etcd/etcd_005.log", ExternalModel::CasRegister, true),
    ("porcupine-etcd/etcd_006.log", ExternalModel::CasRegister, false),
    ("porcupine-etcd/etcd_007.log", ExternalModel::CasRegister, true),
    ("porcupine-etcd/etcd_008.log", ExternalModel::CasRegister, false),
    ("porcupine-etcd/etcd_009.log", ExternalModel::CasRegister, false),
    ("porcupine-kv/c01-ok.txt", ExternalModel::Kv, true),
    ("porcupine-kv/c01-bad.txt", ExternalModel::Kv, false),
    ("knossos-cas/good/memstress3-0.edn", ExternalModel::KnossosCasRegister, true),
    ("knossos-cas/good/memstress3-1.edn", ExternalModel::KnossosCasRegister, true),
    ("knossos-cas/good/cas-register-bug.edn", ExternalModel::KnossosCasRegister, true),
    ("knossos-cas/bad/cas-failure.edn", ExternalModel::KnossosCasRegister, false),
    ("knossos-cas/bad/rethink-fail-minimal.edn", ExternalModel::KnossosCasRegister, false),
];

#[test]
fn every_shared_history_gets_its_known_verdict() {
    let Some(root) = histories() else { return };
    let mut wrong = Vec::new();
    for (file, model, linearizable) in EXPECTED {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for chosen in [Some(*model), None] {
            let result = check_text(&text, chosen, Duration::from_secs(60)).unwrap();
            let expected = if *linearizable { Verdict::Linearizable } else { Verdict::NotLinearizable };
            if result.verdict != expected {
                wrong.push(format!(
                    "{file} (model {chosen:?}): got {:?}, expected {expected:?}",
                    result.verdict
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn a_violation_explains_itself() {
    let Some(root) = histories() else { return };
    let text = std::fs::read_to_string(root.join("knossos-cas/bad/rethink-fail-minimal.edn")).unwrap();
    let result = check_text(&text, Some(ExternalModel::KnossosCasRegister), Duration::from_secs(10)).unwrap();
    let explanation = result.explanation.expect("a violation has an explanation");
    assert!(explanation.contains("cannot place: process 1 Read -> Some(Read(Some(3)))"), "{explanation}");
}
