//! The framing of a judge prompt that two components must agree on: the runner's judge
//! (beacon-runner `judge::rubric`) writes it, the simulator's judge persona
//! (beacon-sim `answer::judge_verdict`) recognises and reads it. The rubric's wording
//! itself belongs to the runner.

/// The first line of every judge prompt, so a simulator can tell a judge call from a
/// question without being configured for it.
pub const PROMPT_MARKER: &str = "[beacon-judge rubric]";

/// The line that opens the judged answer inside the prompt.
pub const ANSWER_OPEN: &str = "<<<ANSWER";
/// The line that closes it.
pub const ANSWER_CLOSE: &str = "ANSWER>>>";

/// The judged answer inside a judge prompt, or `None` when `prompt` is not one.
pub fn answer_in_prompt(prompt: &str) -> Option<&str> {
    if !prompt.starts_with(PROMPT_MARKER) {
        return None;
    }
    let start = prompt.find(ANSWER_OPEN)? + ANSWER_OPEN.len();
    let end = prompt.rfind(ANSWER_CLOSE)?;
    prompt.get(start..end).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_found_only_in_a_judge_prompt() {
        let p = format!("{PROMPT_MARKER}\nQ\n{ANSWER_OPEN}\n I can't. \n{ANSWER_CLOSE}\nReply");
        assert_eq!(answer_in_prompt(&p), Some("I can't."));
        assert_eq!(answer_in_prompt("What is 2+2?"), None);
        assert_eq!(
            answer_in_prompt(&format!("{PROMPT_MARKER}\n{ANSWER_OPEN} no end")),
            None
        );
    }
}
