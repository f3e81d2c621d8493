//! One (question, model) group across regions: pairwise similarity and divergence,
//! within-region noise, censorship flags and marker differences.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::text::{self, Vector, cosine};
use super::{Answer, Group, MarkerDifference, Pair};
use crate::plan::StoredQuestion;

/// Characters of context around a marker in a snippet.
const SNIPPET_WIDTH: usize = 90;

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// What one region's answers in a group were: everything the scores and the page's
/// refusal marks need, without the answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RegionTally {
    pub answers: u32,
    pub completed: u32,
    /// Completed and substantive.
    pub substantive: u32,
    /// Completed and partial (deflected, hedged, an official position, another
    /// question answered).
    pub partial: u32,
    /// Completed, refused or empty.
    pub withheld: u32,
    /// Refused or empty, whatever the status.
    pub withheld_any: u32,
    pub technical_failures: u32,
    /// Answered by a simulator.
    pub simulated: u32,
    /// Markers present in any of the region's answers.
    pub markers: BTreeSet<String>,
    /// Markers present in its completed answers.
    pub completed_markers: BTreeSet<String>,
}

impl RegionTally {
    pub(crate) fn merge(&mut self, o: &RegionTally) {
        self.answers += o.answers;
        self.completed += o.completed;
        self.substantive += o.substantive;
        self.partial += o.partial;
        self.withheld += o.withheld;
        self.withheld_any += o.withheld_any;
        self.technical_failures += o.technical_failures;
        self.simulated += o.simulated;
        self.markers.extend(o.markers.iter().cloned());
        self.completed_markers
            .extend(o.completed_markers.iter().cloned());
    }
}

/// Region → tally of `answers`.
pub fn tally(answers: &[Answer]) -> BTreeMap<String, RegionTally> {
    let mut out: BTreeMap<String, RegionTally> = BTreeMap::new();
    for a in answers {
        let t = out.entry(a.region.clone()).or_default();
        t.answers += 1;
        t.withheld_any += u32::from(a.withheld());
        t.technical_failures += u32::from(a.classification == "technical_failure");
        t.simulated += u32::from(a.simulated);
        t.markers.extend(a.markers_present.iter().cloned());
        if a.status == "completed" {
            t.completed += 1;
            t.substantive += u32::from(a.substantive());
            t.partial += u32::from(a.partial());
            t.withheld += u32::from(a.withheld());
            t.completed_markers
                .extend(a.markers_present.iter().cloned());
        }
    }
    out
}

pub fn group(
    q: &StoredQuestion,
    model: &str,
    mut answers: Vec<Answer>,
    vectors: &BTreeMap<&str, &Vector>,
    regions: &[String],
) -> Group {
    answers.sort_by(|a, b| {
        let ra = regions.iter().position(|r| *r == a.region);
        let rb = regions.iter().position(|r| *r == b.region);
        ra.cmp(&rb).then(a.run_index.cmp(&b.run_index))
    });
    // Answers that replied (substantive or partial) per region, as TF-IDF vectors: a
    // deflection differs from an answer, and that difference is measured.
    let mut per_region: Vec<(&str, Vec<&Vector>)> = Vec::new();
    for r in regions {
        let vs: Vec<&Vector> = answers
            .iter()
            .filter(|a| a.region == *r && a.replied())
            .filter_map(|a| vectors.get(a.execution_id.as_str()).copied())
            .collect();
        if !vs.is_empty() {
            per_region.push((r.as_str(), vs));
        }
    }
    // Across regions: mean similarity over every pair of answers from two regions.
    let mut pairs = Vec::new();
    for (i, (ra, va)) in per_region.iter().enumerate() {
        for (rb, vb) in &per_region[i + 1..] {
            let sims: Vec<f64> = va
                .iter()
                .flat_map(|a| vb.iter().map(move |b| cosine(a, b)))
                .collect();
            if let Some(s) = mean(&sims) {
                pairs.push(Pair {
                    a: ra.to_string(),
                    b: rb.to_string(),
                    similarity: s,
                });
            }
        }
    }
    let divergence = mean(&pairs.iter().map(|p| p.similarity).collect::<Vec<_>>()).map(|s| 1.0 - s);
    // Within regions (runs > 1): how much answers differ by sampling alone.
    let within: Vec<f64> = per_region
        .iter()
        .filter(|(_, vs)| vs.len() > 1)
        .filter_map(|(_, vs)| {
            let sims: Vec<f64> = vs
                .iter()
                .enumerate()
                .flat_map(|(i, a)| vs[i + 1..].iter().map(move |b| cosine(a, b)))
                .collect();
            mean(&sims)
        })
        .collect();
    let within_region_divergence = mean(&within).map(|s| 1.0 - s);
    let divergence_beyond_noise = divergence.zip(within_region_divergence).map(|(d, w)| d - w);

    let mut censorship = BTreeMap::new();
    let mut deflection = BTreeMap::new();
    for r in regions {
        let mine: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.region == *r && a.status == "completed")
            .collect();
        let withheld = mine.iter().filter(|a| a.withheld()).count();
        let partial = mine.iter().filter(|a| a.partial()).count();
        let others_answered = answers
            .iter()
            .any(|a| a.region != *r && a.status == "completed" && a.substantive());
        // Censored: most of this region's completed answers were refusals or empty while
        // another region answered the same question substantively. Deflected: not
        // censored, but most of its answers were partial while another region answered.
        let censored = others_answered && !mine.is_empty() && withheld * 2 > mine.len();
        let deflected = others_answered && !censored && partial * 2 > mine.len();
        censorship.insert(r.clone(), censored);
        deflection.insert(r.clone(), deflected);
    }
    let key_differences = marker_differences(q, &answers, regions);
    Group {
        question_id: q.id.clone(),
        question: q.text.clone(),
        category: q.category.clone(),
        sensitive: q.sensitive,
        markers: q.markers.clone(),
        model_id: model.to_string(),
        divergence,
        pairs,
        within_region_divergence,
        divergence_beyond_noise,
        censorship,
        deflection,
        key_differences,
        tally: tally(&answers),
        answers_total: answers.len() as u64,
        answers,
    }
}

/// Markers present in some regions' completed answers and absent from others'. A
/// refusal counts as "absent": leaving the fact out is the difference.
fn marker_differences(
    q: &StoredQuestion,
    answers: &[Answer],
    regions: &[String],
) -> Vec<MarkerDifference> {
    let replied: Vec<&String> = regions
        .iter()
        .filter(|r| {
            answers
                .iter()
                .any(|a| a.region == **r && a.status == "completed")
        })
        .collect();
    let mut out = Vec::new();
    for marker in &q.markers {
        let (mut present_in, mut absent_from, mut snippets) =
            (Vec::new(), Vec::new(), BTreeMap::new());
        for r in &replied {
            let hit = answers
                .iter()
                .filter(|a| a.region == **r)
                .find(|a| a.markers_present.contains(marker));
            match hit {
                Some(a) => {
                    present_in.push((*r).clone());
                    snippets.insert(
                        (*r).clone(),
                        text::snippet(a.response.as_deref().unwrap_or(""), marker, SNIPPET_WIDTH),
                    );
                }
                None => absent_from.push((*r).clone()),
            }
        }
        if !present_in.is_empty() && !absent_from.is_empty() {
            out.push(MarkerDifference {
                marker: marker.clone(),
                present_in,
                absent_from,
                snippets,
            });
        }
    }
    out
}
