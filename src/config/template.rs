//! Route path templates: literal segments, `{name}` (one non-empty segment)
//! and a trailing `/*` (any rest, including none).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    /// A trailing `/*`: matches any rest of the path, or none.
    wildcard: bool,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "{text:?} is not absolute; a route path starts with /"
            ));
        }
        let (body, wildcard) = match text.strip_suffix("/*") {
            Some(body) => (body, true),
            None => (text, false),
        };
        let mut segments = Vec::new();
        if !(wildcard && body.is_empty()) {
            let parts: Vec<&str> = body[1..].split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                segments.push(
                    segment(part, i + 1 == parts.len()).map_err(|m| format!("{text:?}: {m}"))?,
                );
            }
        }
        Ok(Template { segments, wildcard })
    }

    /// The segments before the `/*` (all of them without one).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Does it end in `/*`?
    pub fn wildcard(&self) -> bool {
        self.wildcard
    }

    /// Does the normalised path (split on `/`, without the leading one) match?
    pub fn matches(&self, segments: &[&str]) -> bool {
        let fixed = self.segments.len();
        let length_fits = match self.wildcard {
            true => segments.len() >= fixed,
            false => segments.len() == fixed,
        };
        length_fits
            && self.segments.iter().zip(segments).all(|(t, s)| match t {
                Segment::Literal(l) => l == s,
                Segment::Param => !s.is_empty(),
            })
    }

    /// Does every path this template matches start with `prefix`, the way
    /// `strip_prefix` is removed (`proxy::pipeline::upstream_path`: whole
    /// segments only, so `/api` comes off `/api` and `/api/x`, never off
    /// `/apiv2`)? Only when the prefix's segments are the template's first
    /// segments and each of them is a literal. A prefix reaching into a
    /// `{param}`, or past the segments before a `/*`, fits some of the
    /// requests the route takes and not the others (`/items/7` on
    /// `/items/{id}`, `/api/v1` on `/api/*`): the upstream would get paths
    /// of two shapes, so it is refused rather than stripped when it fits.
    pub fn always_starts_with(&self, prefix: &str) -> bool {
        let Some(wanted) = prefix.strip_prefix('/') else {
            return false;
        };
        let wanted: Vec<&str> = wanted.split('/').collect();
        let literals: Vec<&str> = self.literal_start().collect();
        wanted.len() <= literals.len() && wanted.iter().zip(&literals).all(|(w, l)| w == l)
    }

    /// Every prefix `always_starts_with` accepts, shortest first: `/api`
    /// and `/api/items` for `/api/items/{id}`.
    pub fn strippable_prefixes(&self) -> Vec<String> {
        self.literal_start()
            .filter(|l| !l.is_empty())
            .scan(String::new(), |prefix, l| {
                prefix.push('/');
                prefix.push_str(l);
                Some(prefix.clone())
            })
            .collect()
    }

    /// The literal segments before the first `{param}` (or the `/*`).
    fn literal_start(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map_while(|s| match s {
            Segment::Literal(l) => Some(l.as_str()),
            Segment::Param => None,
        })
    }

    /// Same literal segments and params in the same places, same wildcard.
    pub fn same_shape(&self, other: &Template) -> bool {
        self.wildcard == other.wildcard && self.segments == other.segments
    }

    /// Precedence: segment by segment, literal beats `{param}` beats `/*`;
    /// among prefixes the longest wins. `Less` means more specific.
    pub fn specificity(&self, other: &Template) -> Ordering {
        let rank = |t: &Template, i: usize| match t.segments.get(i) {
            Some(Segment::Literal(_)) => 0,
            Some(Segment::Param) => 1,
            None if t.wildcard => 3,
            None => 2,
        };
        let len = self.segments.len().max(other.segments.len()) + 1;
        (0..len)
            .map(|i| rank(self, i).cmp(&rank(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

fn segment(part: &str, last: bool) -> Result<Segment, String> {
    if let Some(inner) = part.strip_prefix('{') {
        let name = inner.strip_suffix('}').ok_or("unbalanced `{`")?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`{{{name}}}` is not a parameter name (letters, digits, _)"
            ));
        }
        return Ok(Segment::Param);
    }
    if part.contains(['{', '}']) {
        return Err("unbalanced `{` or `}`; a parameter is a whole segment like {id}".into());
    }
    if part.is_empty() && !last {
        return Err("empty segment (`//`)".into());
    }
    if part == "." || part == ".." {
        return Err("`.` and `..` segments never match a normalised path".into());
    }
    if part.contains(['*', '%', '\\', '?', '#']) || part.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "segment {part:?} has characters a route path cannot match (`*` only as a final /*)"
        ));
    }
    Ok(Segment::Literal(part.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<&str> {
        p[1..].split('/').collect()
    }

    #[test]
    fn wildcard_matches_prefix_itself_and_any_rest() {
        let t = Template::parse("/items/*").unwrap();
        for p in ["/items", "/items/", "/items/a/b"] {
            assert!(t.matches(&segs(p)), "{p}");
        }
        assert!(!t.matches(&segs("/itemsx")));
        assert!(!t.matches(&segs("/other/items")));
        assert!(Template::parse("/*").unwrap().matches(&segs("/")));
        assert!(Template::parse("/*").unwrap().matches(&segs("/a/b")));
    }

    #[test]
    fn params_match_one_non_empty_segment() {
        let t = Template::parse("/items/{id}").unwrap();
        assert!(t.matches(&segs("/items/7")));
        assert!(!t.matches(&segs("/items/")));
        assert!(!t.matches(&segs("/items/7/x")));
        assert!(!t.matches(&segs("/items")));
    }

    #[test]
    fn trailing_slash_is_significant() {
        let t = Template::parse("/a/").unwrap();
        assert!(t.matches(&segs("/a/")));
        assert!(!t.matches(&segs("/a")));
    }

    #[test]
    fn a_strippable_prefix_is_whole_leading_literal_segments() {
        let t = |s| Template::parse(s).unwrap();
        assert!(t("/api/items/*").always_starts_with("/api"));
        assert!(t("/api/items/*").always_starts_with("/api/items"));
        assert!(t("/api/").always_starts_with("/api"));
        assert!(!t("/api/items/*").always_starts_with("/api/it"));
        assert!(!t("/api/*").always_starts_with("/api/v1"));
        assert!(!t("/items/{id}").always_starts_with("/items/7"));
        assert!(!t("/*").always_starts_with("/api"));
        assert_eq!(
            t("/api/items/{id}/x").strippable_prefixes(),
            ["/api", "/api/items"]
        );
        assert!(t("/{tenant}/api").strippable_prefixes().is_empty());
        // The trailing `/` of `/api/` is no segment to strip on its own.
        assert_eq!(t("/api/").strippable_prefixes(), ["/api"]);
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "items",
            "/items/{id",
            "/items/id}",
            "/a//b",
            "/a/{}",
            "/a/*/b",
            "/a/../b",
            "/a/{x}y",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_literal_then_param_then_wildcard_then_longest_prefix() {
        let t = |s| Template::parse(s).unwrap();
        assert_eq!(t("/a/b").specificity(&t("/a/{x}")), Ordering::Less);
        assert_eq!(t("/a/{x}").specificity(&t("/a/*")), Ordering::Less);
        assert_eq!(t("/a/b/*").specificity(&t("/a/*")), Ordering::Less);
        assert_eq!(t("/a/{x}").specificity(&t("/a/{x}/*")), Ordering::Less);
        assert_eq!(t("/{x}/b").specificity(&t("/a/{y}")), Ordering::Greater);
    }
}
