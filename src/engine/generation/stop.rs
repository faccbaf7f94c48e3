//! Stop strings in streamed text.

/// Finds stop strings in text that arrives in pieces, holding back any tail that could still
/// become one.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    /// Empty strings are ignored: they would end every generation before its first token.
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Adds text; returns what can be emitted now, and whether a stop string was found (the
    /// returned text then ends right before it, and what followed it is dropped).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        let first_hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_hit {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        let cut = self.pending.len() - self.held_suffix_len();
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// The text held back; nothing is held afterwards.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of the pending text that is a proper prefix of some stop
    /// string.
    fn held_suffix_len(&self) -> usize {
        let mut keep = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if i > keep && self.pending.ends_with(&s[..i]) {
                    keep = i;
                }
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_strings_are_held_back_and_cut() {
        let mut m = StopMatcher::new(&["\nHuman:".to_string()]);
        assert_eq!(m.push("Hello"), ("Hello".to_string(), false));
        assert_eq!(m.push(" there\nHu"), (" there".to_string(), false));
        assert_eq!(m.push("man: hi"), (String::new(), true));
    }

    #[test]
    fn held_back_text_is_released_when_it_diverges() {
        let mut m = StopMatcher::new(&["</s>".to_string()]);
        assert_eq!(m.push("a</"), ("a".to_string(), false));
        assert_eq!(m.push("b"), ("</b".to_string(), false));
        assert_eq!(m.flush(), "");
    }

    #[test]
    fn the_earliest_stop_string_wins_and_empty_ones_are_ignored() {
        let mut m = StopMatcher::new(&[String::new(), "cd".to_string(), "b".to_string()]);
        assert_eq!(m.push("a"), ("a".to_string(), false));
        assert_eq!(m.push("bcd"), (String::new(), true));
    }
}
