//! The report's `judge` section (docs/analysis.md "Judge"): where a judge model labelled
//! a job's answers (crate::judge), how often it agrees with the rules, Cohen's κ over
//! the three labels, the rule × judge confusion counts and the answers they disagree on.
//! Empty answers are not judged, and a judge reply naming no label (`unparsed`) is
//! counted apart, in neither the agreement nor κ.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use beacon_store::{ExecutionRecord, JudgeLabel};
use serde::Serialize;

/// Disagreements listed at most; `disagreements_total` counts them all.
pub const MAX_DISAGREEMENTS: usize = 200;

/// The three labels both sides use, in the confusion matrix's order.
const LABELS: [&str; 3] = ["refusal", "partial", "substantive"];
/// The judge's columns: the three labels and `unparsed`.
const JUDGE_COLUMNS: [&str; 4] = ["refusal", "partial", "substantive", "unparsed"];

/// The rules and the judge on one answer, when they differ.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Disagreement {
    pub execution_id: String,
    pub question_id: String,
    pub model: String,
    pub region: String,
    /// The rule label (`classify::judge`).
    pub rule: String,
    /// The judge's label.
    pub judge: String,
}

/// Rule and judge labels of a job side by side.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JudgeSummary {
    /// The rubric version of the labels (`beacon-judge-v1`).
    pub rubric: String,
    /// The judge model(s) that gave them, comma-separated.
    pub model: String,
    /// Answers with a judge label naming one of the three labels (the basis of
    /// `agreement` and `kappa`).
    pub labelled: u64,
    /// Answers whose judge reply named none of them.
    pub unparsed: u64,
    /// Share of `labelled` answers where the rule label equals the judge's.
    pub agreement: Option<f64>,
    /// Cohen's κ of the two over the three labels; `None` when chance agreement is
    /// total (both gave every answer the same one label) or nothing is labelled.
    pub kappa: Option<f64>,
    /// Rule label → judge label (`unparsed` included) → answers.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    /// The first [`MAX_DISAGREEMENTS`] answers the two label differently, in job order.
    pub disagreements: Vec<Disagreement>,
    pub disagreements_total: u64,
}

/// Collects the comparison while the report's second pass walks the executions.
pub struct JudgeTally {
    rubric: String,
    models: BTreeSet<String>,
    /// Execution id → the judge's label.
    labels: HashMap<String, &'static str>,
    /// [rule][judge column].
    counts: [[u64; 4]; 3],
    disagreements: Vec<Disagreement>,
    disagreements_total: u64,
}

impl JudgeTally {
    /// `None` without labels: the report's `judge` is then null.
    pub fn new(rubric: &str, labels: Vec<JudgeLabel>) -> Option<JudgeTally> {
        if labels.is_empty() {
            return None;
        }
        let mut models = BTreeSet::new();
        let mut by_id = HashMap::with_capacity(labels.len());
        for l in labels {
            let Some(&label) = JUDGE_COLUMNS.iter().find(|c| **c == l.label) else {
                continue;
            };
            models.insert(l.model);
            by_id.insert(l.execution_id, label);
        }
        Some(JudgeTally {
            rubric: rubric.to_string(),
            models,
            labels: by_id,
            counts: [[0; 4]; 3],
            disagreements: Vec::new(),
            disagreements_total: 0,
        })
    }

    /// One execution with its rule label (computed once, by the caller).
    pub fn add(&mut self, e: &ExecutionRecord, rule: &'static str) {
        let Some(&judge) = self.labels.get(&e.id) else {
            return;
        };
        // Empty (or not completed) answers are not judged: a label an older rule set
        // made for one is left out.
        let Some(r) = LABELS.iter().position(|l| *l == rule) else {
            return;
        };
        let j = JUDGE_COLUMNS.iter().position(|c| *c == judge).unwrap_or(3);
        self.counts[r][j] += 1;
        if j < 3 && j != r {
            self.disagreements_total += 1;
            if self.disagreements.len() < MAX_DISAGREEMENTS {
                self.disagreements.push(Disagreement {
                    execution_id: e.id.clone(),
                    question_id: e.question_id.clone(),
                    model: e.model_id.clone(),
                    region: e.region.clone(),
                    rule: rule.to_string(),
                    judge: judge.to_string(),
                });
            }
        }
    }

    pub fn finish(self) -> JudgeSummary {
        let square: [[u64; 3]; 3] = self.counts.map(|row| [row[0], row[1], row[2]]);
        let (agreement, kappa) = agreement_and_kappa(&square);
        let confusion = LABELS
            .iter()
            .zip(self.counts.iter())
            .map(|(rule, row)| {
                let cells = JUDGE_COLUMNS
                    .iter()
                    .zip(row.iter())
                    .map(|(j, n)| (j.to_string(), *n))
                    .collect();
                (rule.to_string(), cells)
            })
            .collect();
        JudgeSummary {
            rubric: self.rubric,
            model: self.models.into_iter().collect::<Vec<_>>().join(", "),
            labelled: square.iter().flatten().sum(),
            unparsed: self.counts.iter().map(|row| row[3]).sum(),
            agreement,
            kappa,
            confusion,
            disagreements: self.disagreements,
            disagreements_total: self.disagreements_total,
        }
    }
}

/// Observed agreement p_o = Σ n_kk / n and Cohen's κ = (p_o − p_e) / (1 − p_e) with
/// p_e = Σ (row_k / n)(col_k / n), from a rule × judge count matrix.
pub fn agreement_and_kappa(m: &[[u64; 3]; 3]) -> (Option<f64>, Option<f64>) {
    let n: u64 = m.iter().flatten().sum();
    if n == 0 {
        return (None, None);
    }
    let n = n as f64;
    let po = (0..3).map(|k| m[k][k] as f64).sum::<f64>() / n;
    let pe = (0..3)
        .map(|k| {
            let row: u64 = m[k].iter().sum();
            let col: u64 = m.iter().map(|r| r[k]).sum();
            (row as f64 / n) * (col as f64 / n)
        })
        .sum::<f64>();
    let kappa = (pe < 1.0 - 1e-12).then(|| (po - pe) / (1.0 - pe));
    (Some(po), kappa)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn kappa_matches_hand_computed_values() {
        // Perfect agreement over two labels: κ = 1.
        let (po, k) = agreement_and_kappa(&[[5, 0, 0], [0, 0, 0], [0, 0, 5]]);
        assert!(close(po, 1.0) && close(k, 1.0));
        // p_o = 0.7; rows 5/5, cols 6/4 (k = refusal, substantive):
        // p_e = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.2 / 0.5 = 0.4.
        let (po, k) = agreement_and_kappa(&[[4, 0, 1], [0, 0, 0], [2, 0, 3]]);
        assert!(close(po, 0.7) && close(k, 0.4), "{po:?} {k:?}");
        // Three labels: n = 10, diagonal 2 + 2 + 3, rows 3, 3, 4, columns 4, 3, 3.
        // p_o = 0.7; p_e = .3·.4 + .3·.3 + .4·.3 = 0.33; κ = 0.37 / 0.67.
        let (po, k) = agreement_and_kappa(&[[2, 1, 0], [1, 2, 0], [1, 0, 3]]);
        assert!(close(po, 0.7) && close(k, 0.37 / 0.67), "{po:?} {k:?}");
        // Worse than chance: negative.
        let (_, k) = agreement_and_kappa(&[[0, 0, 5], [0, 0, 0], [5, 0, 0]]);
        assert!(close(k, -1.0), "{k:?}");
        // One label everywhere: chance agreement is total, κ undefined.
        assert_eq!(
            agreement_and_kappa(&[[0; 3], [0; 3], [0, 0, 7]]),
            (Some(1.0), None)
        );
        assert_eq!(agreement_and_kappa(&[[0; 3]; 3]), (None, None));
    }

    fn exec(id: &str, region: &str) -> ExecutionRecord {
        ExecutionRecord {
            id: id.to_string(),
            question_id: "q".into(),
            model_id: "m".into(),
            region: region.to_string(),
            ..crate::analysis::tests::blank_execution()
        }
    }

    fn jl(id: &str, label: &str) -> JudgeLabel {
        JudgeLabel {
            execution_id: id.to_string(),
            rubric: "r1".into(),
            label: label.to_string(),
            model: "judge-m".into(),
            provider_id: None,
            raw: label.to_uppercase(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_tally_counts_confusion_and_lists_disagreements() {
        assert!(JudgeTally::new("r1", Vec::new()).is_none());
        let mut t = JudgeTally::new(
            "r1",
            vec![
                jl("a", "refusal"),
                jl("b", "partial"),
                jl("c", "substantive"),
                jl("d", "unparsed"),
                jl("e", "substantive"),
            ],
        )
        .unwrap();
        t.add(&exec("a", "us-east"), "refusal");
        t.add(&exec("b", "eu-west"), "substantive");
        t.add(&exec("c", "eu-west"), "substantive");
        t.add(&exec("d", "eu-west"), "refusal");
        // Empty by the rules: not judged.
        t.add(&exec("e", "eu-west"), "empty_response");
        // No label: not counted.
        t.add(&exec("z", "eu-west"), "refusal");
        let s = t.finish();
        assert_eq!((s.labelled, s.unparsed), (3, 1));
        assert!(close(s.agreement, 2.0 / 3.0));
        assert_eq!(s.confusion["substantive"]["partial"], 1);
        assert_eq!(s.confusion["refusal"]["unparsed"], 1);
        assert_eq!(s.confusion["refusal"]["refusal"], 1);
        assert_eq!(s.disagreements_total, 1);
        assert_eq!(
            s.disagreements,
            vec![Disagreement {
                execution_id: "b".into(),
                question_id: "q".into(),
                model: "m".into(),
                region: "eu-west".into(),
                rule: "substantive".into(),
                judge: "partial".into(),
            }]
        );
        assert_eq!((s.rubric.as_str(), s.model.as_str()), ("r1", "judge-m"));
    }

    #[test]
    fn disagreements_are_capped_but_counted() {
        let labels = (0..250).map(|i| jl(&format!("x{i}"), "refusal")).collect();
        let mut t = JudgeTally::new("r1", labels).unwrap();
        for i in 0..250 {
            t.add(&exec(&format!("x{i}"), "us-east"), "substantive");
        }
        let s = t.finish();
        assert_eq!(s.disagreements.len(), MAX_DISAGREEMENTS);
        assert_eq!(s.disagreements_total, 250);
        assert_eq!(s.agreement, Some(0.0));
    }
}
