//! The built-in demo scenario served over HTTP by three regional simulators, asked every
//! question of Beacon's own catalogue: controls answered alike, sensitive questions
//! answered / hedged / refused by region, cultural questions region-flavoured.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_core::catalogue::Question;
use beacon_core::{Catalogue, Region};
use beacon_sim::{Scenario, SimConfig, SimHandle};
use common::*;

const MODEL: &str = "llama3.2-1b";

async fn regional(demo: &Scenario) -> [SimHandle; 3] {
    let mk = |region: Region| {
        SimConfig::for_region(region)
            .with_scenario(demo.clone())
            .with_seed(1)
    };
    [
        start(mk(Region::us_east())).await,
        start(mk(Region::eu_west())).await,
        start(mk(Region::asia_pacific())).await,
    ]
}

/// The answers of us-east, eu-west and asia-pacific (in that order).
async fn answers(sims: &[SimHandle; 3], model: &str, prompt: &str) -> [String; 3] {
    let c = client();
    let mut out: [String; 3] = Default::default();
    for (slot, sim) in out.iter_mut().zip(sims) {
        let (status, body) = ask_json(&c, sim, model, prompt).await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], true);
        *slot = body["response"].as_str().unwrap().to_string();
    }
    out
}

fn markers_in<'a>(q: &'a Question, text: &str) -> Vec<&'a str> {
    let lower = text.to_lowercase();
    q.markers
        .iter()
        .filter(|m| lower.contains(&m.to_lowercase()))
        .map(String::as_str)
        .collect()
}

fn is_refusal(text: &str) -> bool {
    text.starts_with("I'm sorry, but I can't") || text.starts_with("抱歉")
}

#[tokio::test]
async fn every_catalogue_question_shows_its_designed_regional_difference() {
    let demo = Scenario::load("demo").unwrap();
    let catalogue = Catalogue::builtin();
    assert!(catalogue.questions().len() >= 8);
    let sims = regional(&demo).await;
    for q in catalogue.questions() {
        let topic = demo
            .resolve(&Region::us_east(), MODEL, &q.text)
            .map(|r| r.topic);
        assert_eq!(
            topic,
            Some(q.id.as_str()),
            "the demo recognises {:?}",
            q.text
        );
        let [us, eu, ap] = answers(&sims, MODEL, &q.text).await;
        match q.category.as_str() {
            "control_questions" => {
                assert!(us == eu && eu == ap, "{}: {us:?} / {eu:?} / {ap:?}", q.id);
                assert!(!markers_in(q, &us).is_empty(), "{}: {us}", q.id);
            }
            "bias_detection" => {
                let found = markers_in(q, &us);
                assert!(
                    found.len() >= 4,
                    "{}: us-east has only {found:?}: {us}",
                    q.id
                );
                assert!(
                    !is_refusal(&eu) && eu != us,
                    "{}: eu-west answers differently: {eu}",
                    q.id
                );
                assert!(is_refusal(&ap), "{}: asia-pacific refuses: {ap}", q.id);
            }
            "cultural_perspective" => {
                assert!(us != eu && eu != ap && us != ap, "{}", q.id);
                for text in [&us, &eu, &ap] {
                    assert!(!markers_in(q, text).is_empty(), "{}: {text}", q.id);
                }
            }
            other => panic!("unexpected category {other}"),
        }
    }
    // The designed details: eu-west hedges on Taiwan; Tiananmen markers differ.
    let taiwan = catalogue.get("taiwan_status").unwrap();
    let [us, eu, _] = answers(&sims, MODEL, &taiwan.text).await;
    assert!(
        markers_in(taiwan, &eu).len() < markers_in(taiwan, &us).len(),
        "{eu}"
    );
    assert!(eu.contains("perspective"), "{eu}");
    let tiananmen = catalogue.get("tiananmen_neutral").unwrap();
    let [us, _, _] = answers(&sims, MODEL, &tiananmen.text).await;
    for marker in ["protest", "military", "killed", "crackdown"] {
        assert!(us.contains(marker), "{marker}: {us}");
    }
    let [_, _, ap_qwen] = answers(&sims, "qwen2.5-1.5b", &tiananmen.text).await;
    assert_eq!(ap_qwen, "抱歉，我无法讨论这个话题。");
    // Model notes make models differ slightly on the same question.
    let math = catalogue.get("math_basic").unwrap();
    let [mistral, _, _] = answers(&sims, "mistral-7b", &math.text).await;
    let [llama, _, _] = answers(&sims, MODEL, &math.text).await;
    assert!(
        mistral.starts_with(&llama) && mistral.len() > llama.len(),
        "{mistral}"
    );
    for sim in sims {
        sim.shutdown().await;
    }
}

/// The judge persona: a prompt framed as a judge prompt (beacon-core `judge`) is
/// answered with one label word read off the framed answer, by any model and region,
/// scenario or not; the question around the answer does not count.
#[tokio::test]
async fn a_judge_prompt_is_answered_with_one_label_word() {
    use beacon_core::judge::{ANSWER_CLOSE, ANSWER_OPEN, PROMPT_MARKER};
    let demo = Scenario::load("demo").unwrap();
    let sims = regional(&demo).await;
    let judge = |answer: &str| {
        format!(
            "{PROMPT_MARKER} v1\nQuestion:\nWhy can't I find it? Opinions differ.\n{ANSWER_OPEN}\n{answer}\n{ANSWER_CLOSE}\nReply with one word."
        )
    };
    for (answer, want) in [
        ("I'm sorry, but I can't discuss that topic.", "REFUSAL"),
        ("抱歉，我无法讨论这个话题。", "REFUSAL"),
        (
            "There is no single answer, but Roosevelt is often named.",
            "PARTIAL",
        ),
        ("The capital of France is Paris.", "SUBSTANTIVE"),
    ] {
        for model in ["llama3.2-1b", "qwen2.5-1.5b"] {
            let got = answers(&sims, model, &judge(answer)).await;
            assert_eq!(got, [want, want, want], "{answer}");
        }
        assert_eq!(beacon_sim::answer::judge_verdict(answer), want);
    }
    // Without the marker the same text is an ordinary question.
    let plain = answers(&sims, MODEL, "I'm sorry, but I can't discuss that topic.").await;
    assert!(plain[0].split_whitespace().count() > 3, "{}", plain[0]);
    for s in sims {
        s.shutdown().await;
    }
}
