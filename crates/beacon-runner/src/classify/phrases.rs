//! The lexicon's phrase lists compiled once into Aho-Corasick automata. The classifier
//! asks, for every clause of every answer, whether it holds any phrase of a list; a
//! substring search per phrase built a searcher per phrase per clause, and was a fifth
//! of the runner's CPU per stored answer at thousands of answers per second. One pass
//! per list answers the same question. Where a list's phrases must be removed one after
//! another (`is_filler`, the pivots), this is the test that skips the work when none
//! occurs, which leaves the result exactly as before.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::PIVOTS;
use super::lexicon::*;

/// One phrase list and its automaton.
pub struct Phrases {
    list: Vec<&'static str>,
    /// `None` only if the automaton could not be built (it can for lists far larger
    /// than these); the plain searches then give the same answers.
    ac: Option<AhoCorasick>,
}

impl Phrases {
    fn new(list: Vec<&'static str>) -> Phrases {
        let ac = AhoCorasick::new(&list).ok();
        Phrases { list, ac }
    }

    /// Whether `text` contains any of the phrases.
    pub fn any_in(&self, text: &str) -> bool {
        match &self.ac {
            Some(ac) => ac.is_match(text),
            None => self.list.iter().any(|p| text.contains(p)),
        }
    }
}

fn set(list: &[&'static str]) -> Phrases {
    Phrases::new(list.to_vec())
}

pub static DEFLECTION_SET: LazyLock<Phrases> = LazyLock::new(|| set(DEFLECTIONS));
pub static OFFICIAL_SET: LazyLock<Phrases> = LazyLock::new(|| set(OFFICIAL));
pub static LECTURE_SET: LazyLock<Phrases> = LazyLock::new(|| set(LECTURES));
pub static HEDGE_SET: LazyLock<Phrases> = LazyLock::new(|| set(HEDGES));
pub static COURTESY_SET: LazyLock<Phrases> = LazyLock::new(|| set(COURTESIES));
pub static DISCLAIMER_SET: LazyLock<Phrases> = LazyLock::new(|| set(DISCLAIMERS));
pub static EN_NEGATION_SET: LazyLock<Phrases> = LazyLock::new(|| set(EN_NEGATIONS));
pub static ZH_NEGATION_SET: LazyLock<Phrases> = LazyLock::new(|| set(ZH_NEGATIONS));
pub static PIVOT_SET: LazyLock<Phrases> =
    LazyLock::new(|| Phrases::new(PIVOTS.iter().map(|(from, _)| *from).collect()));

/// Builds every automaton now. Called at start-up: built lazily, they were built by
/// the first answers of the first job, on the worker threads those answers' next calls
/// were waiting for.
pub fn build_all() {
    for set in [
        &DEFLECTION_SET,
        &OFFICIAL_SET,
        &LECTURE_SET,
        &HEDGE_SET,
        &COURTESY_SET,
        &DISCLAIMER_SET,
        &EN_NEGATION_SET,
        &ZH_NEGATION_SET,
        &PIVOT_SET,
    ] {
        LazyLock::force(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_finds_what_a_search_per_phrase_finds() {
        let lists: [(&Phrases, &[&str]); 4] = [
            (&DEFLECTION_SET, DEFLECTIONS),
            (&DISCLAIMER_SET, DISCLAIMERS),
            (&ZH_NEGATION_SET, ZH_NEGATIONS),
            (&HEDGE_SET, HEDGES),
        ];
        for (set, list) in lists {
            for phrase in list {
                let text = format!("before {phrase} after");
                assert!(set.any_in(&text), "{phrase:?}");
            }
            let none = "the capital of france is paris; 巴黎是法国的首都";
            assert_eq!(set.any_in(none), list.iter().any(|p| none.contains(p)));
        }
        assert!(PIVOT_SET.any_in(" a but b "));
        assert!(!PIVOT_SET.any_in(" butter "));
    }
}
