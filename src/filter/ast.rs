//! The filter expression tree and its canonical text form (`Display` round-trips through the parser).

use std::fmt;

use crate::record::Kind;

/// A whole filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Term(Term),
    Not(Box<Expr>),
    /// Every item matches (`a & b`, `a and b`, or `a b`).
    And(Vec<Expr>),
    /// Some item matches (`a | b`, `a or b`).
    Or(Vec<Expr>),
}

/// One predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// `cap:GLOB`: the record's cap name.
    Cap(Glob),
    /// `event:GLOB`: an event record's message name.
    Event(Glob),
    /// `method:GET`: the request method (stored upper-case, matched case-insensitively).
    Method(String),
    /// `status:200`, `status:5xx`.
    Status(StatusPattern),
    /// `host:GLOB`: the request URL's host (or a tunnel's target host).
    Host(Glob),
    /// `region:GLOB`.
    Region(Glob),
    /// `agent:GLOB`: the agent a record belongs to.
    Agent(Glob),
    /// `kind:http|event|login|tunnel|error`.
    Kind(Kind),
    /// Free text: a case-insensitive substring of the URL, names and decoded bodies.
    Text(Text),
    /// `body.Info[0].SimPort == 13005`, `req.ack > 40`, or a bare path (it exists).
    Path(PathPredicate),
}

/// A `*`/`?` wildcard pattern, matched case-insensitively (the one matcher,
/// [`crate::util::glob`], which `--passthrough` uses too).
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    /// The pattern as written.
    pub pattern: String,
    pub(crate) matcher: crate::util::glob::Glob,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            matcher: crate::util::glob::Glob::new(pattern),
        }
    }
}

/// Case folding used by free text.
pub(crate) fn fold(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// Free text to search for.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    /// As written.
    pub text: String,
    pub(crate) folded: String,
}

impl Text {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            folded: text.chars().map(fold).collect(),
        }
    }
}

/// A status pattern: three positions, each a digit or any digit (`x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPattern(pub [Option<u8>; 3]);

impl StatusPattern {
    pub fn matches(&self, status: u16) -> bool {
        if !(100..=999).contains(&status) {
            return false;
        }
        let digits = [
            (status / 100) as u8,
            (status / 10 % 10) as u8,
            (status % 10) as u8,
        ];
        self.0
            .iter()
            .zip(digits)
            .all(|(p, d)| p.is_none_or(|p| p == d))
    }
}

impl fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            match p {
                Some(d) => write!(f, "{d}")?,
                None => f.write_str("x")?,
            }
        }
        Ok(())
    }
}

/// Which body a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `req.`: the request body.
    Request,
    /// `body.`: the response body (for an event record, the event's body).
    Response,
}

impl Side {
    pub fn root(self) -> &'static str {
        match self {
            Side::Request => "req",
            Side::Response => "body",
        }
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `.name` or `["name"]`: a map entry.
    Key(String),
    /// `[3]`: an array element.
    Index(usize),
    /// `[*]` or `.*`: every element of an array or every value of a map.
    Any,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~`: glob match on the value's text.
    Glob,
}

impl Cmp {
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Glob => "~",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number, with the text it was written as (kept so the canonical form is what was typed).
    Number { text: String, value: f64 },
    /// Anything else (a quoted string or a bare word such as `true` or a UUID).
    Text(String),
}

impl Literal {
    pub fn text(&self) -> &str {
        match self {
            Literal::Number { text, .. } | Literal::Text(text) => text,
        }
    }
}

/// `side.path OP literal`, or a bare path meaning "exists".
#[derive(Debug, Clone, PartialEq)]
pub struct PathPredicate {
    pub side: Side,
    pub path: Vec<Segment>,
    pub compare: Option<(Cmp, Literal)>,
    /// For `~`: the literal as a glob.
    pub(crate) glob: Option<Glob>,
}

impl PathPredicate {
    pub fn new(side: Side, path: Vec<Segment>, compare: Option<(Cmp, Literal)>) -> Self {
        let glob = match &compare {
            Some((Cmp::Glob, lit)) => Some(Glob::new(lit.text())),
            _ => None,
        };
        Self {
            side,
            path,
            compare,
            glob,
        }
    }

    /// The path as text (`body.Info[0].SimPort`), without the comparison.
    pub fn path_text(&self) -> String {
        let mut s = self.side.root().to_owned();
        for seg in &self.path {
            push_segment(&mut s, seg);
        }
        s
    }
}

pub(crate) fn push_segment(s: &mut String, seg: &Segment) {
    match seg {
        Segment::Key(k) if is_ident(k) => {
            s.push('.');
            s.push_str(k);
        }
        Segment::Key(k) => {
            s.push('[');
            s.push_str(&quote(k));
            s.push(']');
        }
        Segment::Index(i) => {
            s.push('[');
            s.push_str(&i.to_string());
            s.push(']');
        }
        Segment::Any => s.push_str("[*]"),
    }
}

/// Characters allowed in a bare path key.
pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_ident_char)
}

/// Words that are operators, not text.
pub(crate) const KEYWORDS: &[&str] = &["and", "or", "not"];

/// Characters that end a bare word, or that would change its meaning.
pub(crate) fn is_special(c: char) -> bool {
    c.is_whitespace() || "()&|\"'\\:!=<>~".contains(c)
}

/// Whether a word must be quoted to be read back as the same plain text.
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars().any(is_special)
        || KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
        || ["body.", "body[", "req.", "req["]
            .iter()
            .any(|p| s.starts_with(p))
        || super::parse::parse_number(s).is_some()
}

/// `s` quoted with `"` and backslash escapes.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` bare when that reads back the same, else quoted.
pub(crate) fn word(s: &str) -> String {
    if needs_quotes(s) {
        quote(s)
    } else {
        s.to_owned()
    }
}

pub(crate) fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Http => "http",
        Kind::Event => "event",
        Kind::Login => "login",
        Kind::Tunnel => "tunnel",
        Kind::Error => "error",
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Cap(g) => write!(f, "cap:{}", word(&g.pattern)),
            Term::Event(g) => write!(f, "event:{}", word(&g.pattern)),
            Term::Method(m) => write!(f, "method:{}", word(m)),
            Term::Status(s) => write!(f, "status:{s}"),
            Term::Host(g) => write!(f, "host:{}", word(&g.pattern)),
            Term::Region(g) => write!(f, "region:{}", word(&g.pattern)),
            Term::Agent(g) => write!(f, "agent:{}", word(&g.pattern)),
            Term::Kind(k) => write!(f, "kind:{}", kind_name(*k)),
            Term::Text(t) => f.write_str(&word(&t.text)),
            Term::Path(p) => {
                f.write_str(&p.path_text())?;
                match &p.compare {
                    None => Ok(()),
                    Some((cmp, Literal::Number { text, .. })) => {
                        write!(f, " {} {text}", cmp.symbol())
                    }
                    Some((cmp, Literal::Text(t))) => write!(f, " {} {}", cmp.symbol(), word(t)),
                }
            }
        }
    }
}

impl Expr {
    fn write_child(&self, f: &mut fmt::Formatter<'_>, child: &Expr) -> fmt::Result {
        let parens = matches!(
            (self, child),
            (Expr::And(_) | Expr::Not(_), Expr::And(_) | Expr::Or(_)) | (Expr::Or(_), Expr::Or(_))
        );
        if parens {
            write!(f, "({child})")
        } else {
            write!(f, "{child}")
        }
    }
}

impl fmt::Display for Expr {
    /// The canonical form: `&` and `|` with spaces, `!` for not, parentheses only where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Term(t) => write!(f, "{t}"),
            Expr::Not(e) => {
                f.write_str("!")?;
                self.write_child(f, e)
            }
            Expr::And(items) | Expr::Or(items) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " & "
                } else {
                    " | "
                };
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    self.write_child(f, e)?;
                }
                Ok(())
            }
        }
    }
}
