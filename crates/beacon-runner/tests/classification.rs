//! The answer classifier against the labelled fixture set (`tests/fixtures/answers.toml`):
//! every answer gets its label, and the set is large and Chinese enough to mean something.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use beacon_core::status::{Classification, ExecutionStatus};
use beacon_runner::classify::classify;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixtures {
    answer: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    text: String,
    label: Classification,
    lang: String,
    note: String,
}

const LABELS: [Classification; 3] = [
    Classification::Substantive,
    Classification::ContentRefusal,
    Classification::EmptyResponse,
];

fn load() -> Vec<Fixture> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/answers.toml");
    let text = std::fs::read_to_string(path).expect("read the fixture file");
    toml::from_str::<Fixtures>(&text)
        .expect("parse the fixture file")
        .answer
}

fn index(c: Classification) -> usize {
    LABELS
        .iter()
        .position(|l| *l == c)
        .expect("a completed answer's class")
}

#[test]
fn every_fixture_is_classified_as_labelled() {
    let fixtures = load();
    let mut matrix = [[0usize; 3]; 3];
    let mut wrong = Vec::new();
    for f in &fixtures {
        assert!(
            f.lang == "en" || f.lang == "zh",
            "lang {:?} in {:?}",
            f.lang,
            f.text
        );
        assert!(!f.note.trim().is_empty(), "a note for {:?}", f.text);
        let got = classify(ExecutionStatus::Completed, Some(&f.text))
            .expect("a completed execution is classified");
        matrix[index(f.label)][index(got)] += 1;
        if got != f.label {
            wrong.push(format!(
                "  [{}] {:?}\n      labelled {}, got {} ({})",
                f.lang,
                f.text,
                f.label.as_str(),
                got.as_str(),
                f.note
            ));
        }
    }

    println!("confusion matrix (rows: label, columns: classified as)");
    println!(
        "{:>16} {:>12} {:>16} {:>15}",
        "", "substantive", "content_refusal", "empty_response"
    );
    for (label, row) in LABELS.iter().zip(matrix) {
        println!(
            "{:>16} {:>12} {:>16} {:>15}",
            label.as_str(),
            row[0],
            row[1],
            row[2]
        );
    }
    for lang in ["en", "zh"] {
        let counts = LABELS.map(|l| {
            fixtures
                .iter()
                .filter(|f| f.lang == lang && f.label == l)
                .count()
        });
        println!(
            "{lang}: {} substantive, {} content_refusal, {} empty_response",
            counts[0], counts[1], counts[2]
        );
    }

    assert!(
        wrong.is_empty(),
        "{} of {} fixtures misclassified:\n{}",
        wrong.len(),
        fixtures.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_fixture_set_is_large_and_bilingual() {
    let fixtures = load();
    let zh = fixtures.iter().filter(|f| f.lang == "zh").count();
    assert!(fixtures.len() >= 60, "only {} fixtures", fixtures.len());
    assert!(zh >= 20, "only {zh} Chinese or mixed fixtures");
    for label in LABELS {
        for lang in ["en", "zh"] {
            assert!(
                fixtures.iter().any(|f| f.label == label && f.lang == lang),
                "no {lang} fixture labelled {}",
                label.as_str()
            );
        }
    }
}

#[test]
fn failed_and_unfinished_executions() {
    assert_eq!(
        classify(ExecutionStatus::Failed, Some("I'm sorry, but I can't")),
        Some(Classification::TechnicalFailure)
    );
    assert_eq!(
        classify(ExecutionStatus::Completed, None),
        Some(Classification::EmptyResponse)
    );
    assert_eq!(classify(ExecutionStatus::Running, None), None);
}
