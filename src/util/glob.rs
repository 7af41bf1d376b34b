//! The one wildcard matcher: `*` is any run of characters, `?` one character, and case does not
//! matter. The filter language (`cap:`, `event:`, `host:`, `region:`, `~`) and `--passthrough` both
//! use it, so a pattern means the same everywhere. Built on `wildmatch`; the two commonest shapes
//! (no wildcard, one trailing `*`) skip it, comparing characters exactly as it does, because filters
//! run over every record (benches/filter.rs: `cap:Fetch*` took 1.6x as long through `wildmatch`).

use wildmatch::WildMatch;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    pattern: String,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// No wildcard: the whole text, ignoring case.
    Exact,
    /// One trailing `*` and no other wildcard: a prefix (the pattern without its `*`).
    Prefix(String),
    General(WildMatch),
}

impl Glob {
    /// Compiles `pattern`. Every text is a valid pattern (there is nothing to escape).
    pub fn new(pattern: &str) -> Self {
        let wild = |c: char| c == '*' || c == '?';
        let shape = match pattern.strip_suffix('*') {
            _ if !pattern.contains(wild) => Shape::Exact,
            Some(prefix) if !prefix.contains(wild) => Shape::Prefix(prefix.to_owned()),
            _ => Shape::General(WildMatch::new_case_insensitive(pattern)),
        };
        Glob {
            pattern: pattern.to_owned(),
            shape,
        }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        match &self.shape {
            Shape::Exact => starts_with(text, &self.pattern).is_some_and(str::is_empty),
            Shape::Prefix(prefix) => starts_with(text, prefix).is_some(),
            Shape::General(matcher) => matcher.matches(text),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// What is left of `text` after `prefix`, when `text` starts with it ignoring case.
fn starts_with<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let mut rest = text.chars();
    for p in prefix.chars() {
        if !same_char(p, rest.next()?) {
            return None;
        }
    }
    Some(rest.as_str())
}

/// Character equality ignoring case, as `wildmatch` compares in its case-insensitive mode.
fn same_char(a: char, b: char) -> bool {
    a == b
        || if a.is_ascii() && b.is_ascii() {
            a.eq_ignore_ascii_case(&b)
        } else {
            a.to_lowercase().eq(b.to_lowercase())
        }
}

/// [`Glob::new`]`(pattern).matches(text)`, for a pattern used once.
pub fn matches(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_questions_and_case() {
        assert!(matches("*.example.com", "sim1.Example.COM"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("10.0.0.?", "10.0.0.7"));
        assert!(!matches("10.0.0.?", "10.0.0.17"));
        assert!(matches("*", "anything"));
        assert!(matches("*", ""));
        assert!(!matches("?", ""));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("Fetch*", "fetchinventory2"));
        assert!(matches("**x**", "x"));
        // One `?` is one character, not one byte.
        assert!(matches("caf?", "café"));
        assert!(matches("RÉGION*", "région 1"));
    }

    #[test]
    fn the_fast_shapes_agree_with_the_general_matcher() {
        let patterns = [
            "", "getmesh", "GetMesh", "Fetch*", "fetch*", "*", "é*", "CAFÉ", "ǅ*", "K",
        ];
        let texts = [
            "",
            "GetMesh",
            "getmesh2",
            "FetchInventory2",
            "fetch",
            "Fetc",
            "café",
            "CAFÉ",
            "ǆx",
            "\u{212a}",
            "k",
            "é",
        ];
        for p in patterns {
            let glob = Glob::new(p);
            let general = WildMatch::new_case_insensitive(p);
            for t in texts {
                assert_eq!(glob.matches(t), general.matches(t), "{p:?} vs {t:?}");
            }
        }
        assert!(matches!(Glob::new("Fetch*").shape, Shape::Prefix(_)));
        assert!(matches!(Glob::new("Fetch").shape, Shape::Exact));
        assert!(matches!(Glob::new("F*h*").shape, Shape::General(_)));
        assert!(matches!(Glob::new("F?*").shape, Shape::General(_)));
    }

    #[test]
    fn backtracking_does_not_blow_up() {
        let text = "a".repeat(10_000);
        assert!(!matches("*a*a*a*a*a*b", &text));
        assert!(matches("*a*a*a*a*a*", &text));
    }
}
