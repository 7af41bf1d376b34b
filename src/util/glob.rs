//! The one wildcard matcher: `*` is any run of characters, `?` one character, and case does not
//! matter. The filter language (`cap:`, `event:`, `host:`, `region:`, `~`) and `--passthrough` both
//! use it, so a pattern means the same everywhere. Built on `wildmatch`; owns only the choice of
//! its options.

use wildmatch::WildMatch;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    pattern: String,
    matcher: WildMatch,
}

impl Glob {
    /// Compiles `pattern`. Every text is a valid pattern (there is nothing to escape).
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_owned(),
            matcher: WildMatch::new_case_insensitive(pattern),
        }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.matcher.matches(text)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
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
    fn backtracking_does_not_blow_up() {
        let text = "a".repeat(10_000);
        assert!(!matches("*a*a*a*a*a*b", &text));
        assert!(matches("*a*a*a*a*a*", &text));
    }
}
