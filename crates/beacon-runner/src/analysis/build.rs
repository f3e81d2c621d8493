//! Building a report from executions read page by page, in bounded memory: a first
//! pass ([`FirstPass`]) gathers the TF-IDF document frequencies and each answer's rule
//! label (so the rules run once per answer: the second pass reuses it), a second feeds
//! [`ReportBuilder`], which holds one (question, model) group's answers at a time
//! (executions come in job order, and the accept pipeline numbers a job's cells
//! question by question, model by model: `JobPlan::cells`), keeps the group's numbers
//! and tally, and the answers' text only while the report's answer budget lasts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use beacon_core::status::ExecutionStatus;
use beacon_store::{ExecutionRecord, JobRecord, JudgeLabel};
use serde_json::Value;

use super::judge::JudgeTally;
use super::text::{self, Vector, Vocabulary};
use super::{
    Answer, Group, Report, answer, answer_labelled, answers_export, groups, label, question_of,
    scores,
};
use crate::classify::Question;
use crate::plan::StoredPlan;

/// The report's first pass: the corpus of answers that replied, substantive or partial
/// (only those are compared, as in analysis.md), and each execution's rule label with
/// the status it was found in.
#[derive(Default)]
pub struct FirstPass {
    pub vocabulary: Vocabulary,
    /// `seq` → (status, rule label): a few bytes an execution.
    labels: HashMap<u32, (ExecutionStatus, &'static str)>,
}

impl FirstPass {
    pub fn add(&mut self, plan: &StoredPlan, e: &ExecutionRecord) {
        let Some(q) = plan.question(&e.question_id) else {
            return;
        };
        let l = label(e, question_of(q));
        self.labels.insert(e.seq, (e.status, l));
        if matches!(l, "substantive" | "partial") {
            self.vocabulary
                .add(&text::tokenize(e.response.as_deref().unwrap_or("")));
        }
    }

    /// The label the first pass found for `e`, or (when `e` was not seen, or its status
    /// changed in between: a running job) the rules' label now.
    pub fn label_of(&self, e: &ExecutionRecord, q: Question<'_>) -> &'static str {
        match self.labels.get(&e.seq) {
            Some((status, l)) if *status == e.status => l,
            _ => label(e, q),
        }
    }
}

/// The report's second pass.
pub struct ReportBuilder<'a> {
    plan: &'a StoredPlan,
    first: &'a FirstPass,
    /// Rule against judge labels, when the job has judge labels.
    judge: Option<JudgeTally>,
    /// Answers whose text the report may still list.
    budget: usize,
    /// The group being filled: its (question, model) indexes in the plan.
    open: Option<((usize, usize), Vec<Answer>)>,
    groups: Vec<Group>,
    simulated: bool,
}

impl<'a> ReportBuilder<'a> {
    pub fn new(plan: &'a StoredPlan, first: &'a FirstPass, budget: usize) -> Self {
        ReportBuilder {
            plan,
            first,
            judge: None,
            budget,
            open: None,
            groups: Vec::new(),
            simulated: false,
        }
    }

    /// Compares the rule labels with these judge labels of `rubric` (none: the report's
    /// `judge` stays null).
    pub fn with_judge(mut self, rubric: &str, labels: Vec<JudgeLabel>) -> Self {
        self.judge = JudgeTally::new(rubric, labels);
        self
    }

    /// One execution, in job order. Executions of a question or model the plan does
    /// not name are left out, as they always were.
    pub fn add(&mut self, e: &ExecutionRecord) {
        let plan = self.plan;
        let Some(qi) = plan.questions.iter().position(|q| q.id == e.question_id) else {
            return;
        };
        let Some(mi) = plan.models.iter().position(|m| *m == e.model_id) else {
            return;
        };
        let q = question_of(&plan.questions[qi]);
        let rule = self.first.label_of(e, q);
        if let Some(judge) = &mut self.judge {
            judge.add(e, rule);
        }
        let a = answer_labelled(e, q, rule);
        self.simulated |= a.simulated;
        match &mut self.open {
            Some((key, answers)) if *key == (qi, mi) => answers.push(a),
            _ => {
                self.close();
                self.open = Some(((qi, mi), vec![a]));
            }
        }
    }

    /// Turns the open group into its numbers, and lets go of its answers' text once
    /// the budget is spent.
    fn close(&mut self) {
        let Some(((qi, mi), answers)) = self.open.take() else {
            return;
        };
        let vectors: Vec<(String, Vector)> = answers
            .iter()
            .filter(|a| a.replied())
            .map(|a| {
                let tokens = text::tokenize(a.response.as_deref().unwrap_or(""));
                (
                    a.execution_id.clone(),
                    self.first.vocabulary.vector(&tokens),
                )
            })
            .collect();
        let by_id: BTreeMap<&str, &Vector> =
            vectors.iter().map(|(id, v)| (id.as_str(), v)).collect();
        let q = &self.plan.questions[qi];
        let model = &self.plan.models[mi];
        let mut g = groups::group(q, model, answers, &by_id, &self.plan.regions);
        let keep = g.answers.len().min(self.budget);
        g.answers.truncate(keep);
        g.answers.shrink_to_fit();
        self.budget -= keep;
        // Executions arrive in plan order, so a group seen before is a store that
        // numbered cells differently: its two parts are merged below, not lost.
        self.groups.push(g);
    }

    pub fn finish(mut self, job: &JobRecord, counts: Value) -> Report {
        self.close();
        let mut groups = merge_split_groups(self.groups, self.plan);
        groups.sort_by_key(|g| group_order(self.plan, g));
        let (analysis, region_scores) = scores::job_scores(&groups, &self.plan.regions);
        let answers_total: u64 = groups.iter().map(|g| g.answers_total).sum();
        let answers_included = groups.iter().map(|g| g.answers.len() as u64).sum();
        Report {
            job_id: job.id.clone(),
            status: job.status.as_str().to_string(),
            generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            terminal: job.status.is_terminal(),
            counts,
            simulated: self.simulated,
            regions: self.plan.regions.clone(),
            models: self.plan.models.clone(),
            groups,
            region_scores,
            analysis,
            answers_total,
            answers_included,
            answers_truncated: answers_included < answers_total,
            answers_export: answers_export(&job.id),
            judge: self.judge.map(JudgeTally::finish),
        }
    }
}

fn group_order(plan: &StoredPlan, g: &Group) -> (usize, usize) {
    (
        plan.questions
            .iter()
            .position(|q| q.id == g.question_id)
            .unwrap_or(usize::MAX),
        plan.models
            .iter()
            .position(|m| *m == g.model_id)
            .unwrap_or(usize::MAX),
    )
}

/// A group met twice (its executions were not contiguous in job order) has two
/// partial entries; their numbers cannot be merged without the answers, so the first
/// is kept with the tallies of both and the case is logged. The accept pipeline never
/// produces this.
fn merge_split_groups(groups: Vec<Group>, plan: &StoredPlan) -> Vec<Group> {
    let mut seen: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut out: Vec<Group> = Vec::with_capacity(groups.len());
    for g in groups {
        let key = group_order(plan, &g);
        if seen.insert(key) {
            out.push(g);
            continue;
        }
        tracing::warn!(
            question = %g.question_id,
            model = %g.model_id,
            "a group's executions are not contiguous in job order; its numbers cover its first part"
        );
        if let Some(first) = out.iter_mut().find(|f| group_order(plan, f) == key) {
            first.answers_total += g.answers_total;
            for (region, t) in g.tally {
                first.tally.entry(region).or_default().merge(&t);
            }
        }
    }
    out
}

/// The answers of one group from its executions, as the report lists them (the
/// portal's per-model page and the report page read a group's answers this way when
/// the report itself lists only some).
pub fn answers_of(g: &Group, executions: &[ExecutionRecord], regions: &[String]) -> Vec<Answer> {
    let mut out: Vec<Answer> = executions
        .iter()
        .filter(|e| e.question_id == g.question_id && e.model_id == g.model_id)
        .map(|e| {
            let q = Question {
                markers: &g.markers,
                category: &g.category,
                text: &g.question,
            };
            answer(e, q)
        })
        .collect();
    out.sort_by(|a, b| {
        let ra = regions.iter().position(|r| *r == a.region);
        let rb = regions.iter().position(|r| *r == b.region);
        ra.cmp(&rb).then(a.run_index.cmp(&b.run_index))
    });
    out
}
