//! "Did you mean …?": the known name closest to a mistyped one.

/// The candidate closest to `given` (Jaro-Winkler), if it is close
/// enough to be what was meant.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_the_name_and_a_stranger_finds_nothing() {
        assert_eq!(closest("reserch", ["research", "writer"]), Some("research".into()));
        assert_eq!(closest("wrtier", ["research", "writer"]), Some("writer".into()));
        assert_eq!(closest("zzz", ["research", "writer"]), None);
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }
}
