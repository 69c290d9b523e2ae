//! "did you mean ...?" for an unknown key or word: the known one nearest by
//! edit distance, when it is near enough to be a typo of it.

/// The hint to end an unknown key's or word's message with: `"; did you
/// mean `x`?"`, or empty when no candidate is near `word`.
pub fn hint(word: &str, candidates: &[&str]) -> String {
    match nearest(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

/// The candidate nearest to `word` by Levenshtein distance, if it is at
/// most 2 edits away and at most a third of the candidate's length
/// (rounded up): `nmae` gives `name`, but `foo` is no typo of `log`. Ties
/// go to the first candidate, in the order the section lists its keys.
fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d <= c.chars().count().div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Insertions, deletions and substitutions (of chars) turning `a` into `b`.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]`: the distance from the part of `a` seen so far to `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_single_char_edits() {
        for (a, b, d) in [
            ("", "", 0),
            ("", "abc", 3),
            ("strip_prefx", "strip_prefix", 1),
            ("nmae", "name", 2),
            ("kitten", "sitting", 3),
            ("héllo", "hello", 1),
        ] {
            assert_eq!((levenshtein(a, b), levenshtein(b, a)), (d, d), "{a} {b}");
        }
    }

    #[test]
    fn only_a_near_candidate_is_suggested() {
        let keys = ["listen", "tls", "log", "routes"];
        assert_eq!(nearest("lisen", &keys), Some("listen"));
        assert_eq!(nearest("rotues", &keys), Some("routes"));
        assert_eq!(nearest("foo", &keys), None);
        assert_eq!(nearest("tlsx", &keys), Some("tls"));
        assert_eq!(nearest("completely_else", &keys), None);
        assert_eq!(hint("lgo", &keys), "");
        assert_eq!(hint("logs", &keys), "; did you mean `log`?");
    }
}
