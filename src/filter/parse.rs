//! The filter parser, driven by the term and operator tables that also produce the help text.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! expr    := and (("|" | "||" | "or") and)*
//! and     := unary (("&" | "&&" | "and")? unary)*      adjacent terms are and-ed
//! unary   := ("!" | "not") unary | "(" expr ")" | term
//! term    := NAME ":" value | path [CMP literal] | text
//! path    := ("body" | "req") ("." key | "[" (index | "*" | quoted) "]")+
//! ```

use super::ast::{
    is_ident_char, is_special, Cmp, Expr, Glob, Literal, PathPredicate, Segment, Side,
    StatusPattern, Term, Text, KEYWORDS,
};
use crate::record::Kind;

/// Longest filter accepted, in bytes (a guard against pasting a whole file by mistake).
pub const MAX_FILTER_LEN: usize = 64 * 1024;

/// Deepest nesting of parentheses and `!` accepted (the parser recurses).
pub const MAX_DEPTH: usize = 64;

/// One `name:value` term: its name, what its value looks like, what it does, and how it is built.
pub struct TermSpec {
    pub code: &'static str,
    pub arg: &'static str,
    pub help: &'static str,
    pub build: fn(&str) -> Result<Term, String>,
}

/// Every `name:value` term. The parser reads names from this table and [`super::help`] lists it.
pub const TERMS: &[TermSpec] = &[
    TermSpec {
        code: "cap",
        arg: "GLOB",
        help: "the cap's name, e.g. cap:EventQueueGet, cap:Fetch*",
        build: build_cap,
    },
    TermSpec {
        code: "event",
        arg: "GLOB",
        help: "an event record's message, e.g. event:TeleportFinish",
        build: build_event,
    },
    TermSpec {
        code: "method",
        arg: "METHOD",
        help: "the request method, e.g. method:POST",
        build: build_method,
    },
    TermSpec {
        code: "status",
        arg: "CODE",
        help: "the response status; x is any digit, e.g. status:502, status:5xx",
        build: build_status,
    },
    TermSpec {
        code: "host",
        arg: "GLOB",
        help: "the request URL's host (a tunnel's target host), e.g. host:*.lindenlab.com",
        build: build_host,
    },
    TermSpec {
        code: "region",
        arg: "GLOB",
        help: "the region the cap belongs to, e.g. region:Ahern",
        build: build_region,
    },
    TermSpec {
        code: "agent",
        arg: "GLOB",
        help: "the agent the record belongs to (`First Last` from its login), e.g. agent:\"Ann *\"",
        build: build_agent,
    },
    TermSpec {
        code: "kind",
        arg: "KIND",
        help: "the record kind: http, event, login, tunnel or error",
        build: build_kind,
    },
];

/// Operators and forms that are not `name:value` terms, for the help text.
pub const FORMS: &[(&str, &str)] = &[
    (
        "TEXT or \"TEXT\"",
        "free text: a case-insensitive substring of the URL, cap and event names, region and decoded bodies",
    ),
    (
        "body.PATH OP VALUE",
        "compare values at a path in the decoded response body (an event record: the event body), \
         e.g. body.Info[0].SimPort == 13005",
    ),
    ("req.PATH OP VALUE", "the same in the decoded request body, e.g. req.ack > 40"),
    (
        "body.PATH",
        "the path exists; PATH steps are .key, [\"any key\"], [N] and [*] (every element)",
    ),
    ("!X, not X", "X does not match"),
    ("X & Y, X and Y, X Y", "both match"),
    ("X | Y, X or Y", "either matches (binds looser than and)"),
    ("( X )", "grouping"),
];

/// Comparison operators, longest first (the lexer takes the first that fits), with their help.
pub const COMPARISONS: &[(&str, Cmp, &str)] = &[
    (
        "==",
        Cmp::Eq,
        "equal (numbers by value; text, UUIDs and booleans by their text)",
    ),
    ("!=", Cmp::Ne, "not equal"),
    ("<=", Cmp::Le, "at most (numbers and dates)"),
    (">=", Cmp::Ge, "at least"),
    ("<", Cmp::Lt, "less than"),
    (">", Cmp::Gt, "greater than"),
    (
        "~",
        Cmp::Glob,
        "glob match on the value's text, e.g. ~ \"Object 1*\"",
    ),
];

fn build_cap(v: &str) -> Result<Term, String> {
    Ok(Term::Cap(Glob::new(v)))
}
fn build_event(v: &str) -> Result<Term, String> {
    Ok(Term::Event(Glob::new(v)))
}
fn build_host(v: &str) -> Result<Term, String> {
    Ok(Term::Host(Glob::new(v)))
}
fn build_region(v: &str) -> Result<Term, String> {
    Ok(Term::Region(Glob::new(v)))
}
fn build_agent(v: &str) -> Result<Term, String> {
    Ok(Term::Agent(Glob::new(v)))
}
fn build_method(v: &str) -> Result<Term, String> {
    if v.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(Term::Method(v.to_ascii_uppercase()))
    } else {
        Err(format!("`{v}` is not an HTTP method"))
    }
}
fn build_status(v: &str) -> Result<Term, String> {
    let bad = || format!("`{v}` is not a status: write three digits, x for any digit (404, 5xx)");
    let chars: Vec<char> = v.chars().collect();
    if chars.len() != 3 {
        return Err(bad());
    }
    let mut p = [None; 3];
    for (slot, c) in p.iter_mut().zip(chars) {
        *slot = match c {
            '0'..='9' => Some(c as u8 - b'0'),
            'x' | 'X' => None,
            _ => return Err(bad()),
        };
    }
    Ok(Term::Status(StatusPattern(p)))
}
fn build_kind(v: &str) -> Result<Term, String> {
    let k = match v.to_ascii_lowercase().as_str() {
        "http" => Kind::Http,
        "event" => Kind::Event,
        "login" => Kind::Login,
        "tunnel" => Kind::Tunnel,
        "error" => Kind::Error,
        _ => {
            return Err(format!(
                "`{v}` is not a kind: use http, event, login, tunnel or error"
            ))
        }
    };
    Ok(Term::Kind(k))
}

/// A filter that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad filter at column {column}: {message}\n  {input}\n  {caret}^", caret = " ".repeat(column.saturating_sub(1)))]
pub struct ParseError {
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
    /// The filter as given.
    pub input: String,
}

/// A number literal: decimal digits with an optional sign, fraction and exponent.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a filter expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        src: input,
        pos: 0,
        depth: 0,
    };
    if input.len() > MAX_FILTER_LEN {
        return Err(p.error_at(
            0,
            format!("the filter is longer than {MAX_FILTER_LEN} bytes"),
        ));
    }
    p.ws();
    if p.at_end() {
        return Err(p.error("the filter is empty"));
    }
    let e = p.or()?;
    p.ws();
    if !p.at_end() {
        let msg = if p.peek() == Some(')') {
            "`)` without a matching `(`".to_owned()
        } else {
            format!("unexpected `{}`", p.rest_token())
        };
        return Err(p.error(msg));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset.
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message.into())
    }

    fn error_at(&self, pos: usize, message: String) -> ParseError {
        let column = self.src.get(..pos).map_or(1, |s| s.chars().count() + 1);
        ParseError {
            column,
            message,
            input: self.src.to_owned(),
        }
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// The next few characters, for error messages.
    fn rest_token(&self) -> String {
        let t: String = self
            .rest()
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(20)
            .collect();
        if t.is_empty() {
            self.peek().map(String::from).unwrap_or_default()
        } else {
            t
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// A keyword (`and`, `or`, `not`) standing alone as a word.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(kw)
            && rest[kw.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '(' || c == '!' || c == '"')
        {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and()?];
        loop {
            self.ws();
            if self.eat("||") || self.eat("|") || self.eat_keyword("or") {
                self.ws();
                items.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.unary()?];
        loop {
            self.ws();
            let before = self.pos;
            if self.at_end()
                || self.peek() == Some(')')
                || self.peek() == Some('|')
                || self.eat_keyword("or")
            {
                self.pos = before;
                break;
            }
            if self.eat("&&") || self.eat("&") || self.eat_keyword("and") {
                self.ws();
            }
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.ws();
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        if self.at_end() {
            return Err(self.error("expected a term here, but the filter ends"));
        }
        let bang = self.rest().starts_with('!') && !self.rest().starts_with("!=");
        if bang || self.eat_keyword("not") {
            if bang {
                self.pos += 1;
            }
            self.depth += 1;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        if self.peek() == Some('(') {
            let open = self.pos;
            self.pos += 1;
            self.depth += 1;
            self.ws();
            if self.peek() == Some(')') {
                return Err(self.error("empty parentheses"));
            }
            let inner = self.or();
            self.depth -= 1;
            let inner = inner?;
            self.ws();
            if !self.eat(")") {
                if self.at_end() {
                    return Err(self.error_at(open, "this `(` is never closed".to_owned()));
                }
                return Err(self.error(format!("expected `)`, found `{}`", self.rest_token())));
            }
            return Ok(inner);
        }
        self.term().map(Expr::Term)
    }

    fn term(&mut self) -> Result<Term, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('"' | '\'') => {
                let s = self.quoted()?;
                return Ok(Term::Text(Text::new(&s)));
            }
            Some(c @ (')' | '&' | '|')) => {
                return Err(self.error(format!("expected a term, found `{c}`")));
            }
            _ => {}
        }
        // A leading identifier decides: `name:` term, a path, or free text.
        let ident_len = self
            .rest()
            .char_indices()
            .find(|(_, c)| !is_ident_char(*c))
            .map_or(self.rest().len(), |(i, _)| i);
        let ident = &self.src[start..start + ident_len];
        let after = self.rest()[ident_len..].chars().next();
        if after == Some(':') && ident_len > 0 {
            let Some(spec) = TERMS.iter().find(|t| t.code.eq_ignore_ascii_case(ident)) else {
                let known: Vec<&str> = TERMS.iter().map(|t| t.code).collect();
                return Err(self.error_at(
                    start,
                    format!(
                        "unknown term `{ident}:` (terms: {}; quote text that contains `:`)",
                        known.join(", ")
                    ),
                ));
            };
            self.pos += ident_len + 1;
            let value_at = self.pos;
            let value = self.value()?;
            if value.is_empty() {
                return Err(
                    self.error_at(value_at, format!("expected a value after `{}:`", spec.code))
                );
            }
            return (spec.build)(&value).map_err(|m| self.error_at(value_at, m));
        }
        if (ident == "body" || ident == "req") && matches!(after, Some('.' | '[')) {
            return self.path_term();
        }
        let w = self.bare_word();
        if w.is_empty() {
            return Err(self.error(format!("unexpected `{}`", self.rest_token())));
        }
        if KEYWORDS.contains(&w.as_str()) {
            return Err(self.error_at(start, format!("`{w}` needs something on its left")));
        }
        Ok(Term::Text(Text::new(&w)))
    }

    /// A term's value: quoted, or bare up to whitespace or an operator.
    fn value(&mut self) -> Result<String, ParseError> {
        if matches!(self.peek(), Some('"' | '\'')) {
            return self.quoted();
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !"()&|\"'".contains(c))
        {
            self.bump();
        }
        Ok(self.src[start..self.pos].to_owned())
    }

    /// Free text: up to whitespace or a character that has a meaning of its own.
    fn bare_word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_special(c)) {
            self.bump();
        }
        self.src[start..self.pos].to_owned()
    }

    fn quoted(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        let Some(q) = self.bump() else {
            return Err(self.error("expected a quoted string"));
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error_at(open, format!("this {q} is never closed")));
                }
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => out.push(c),
                    None => return Err(self.error_at(open, format!("this {q} is never closed"))),
                },
                Some(c) if c == q => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn path_term(&mut self) -> Result<Term, ParseError> {
        let side = if self.eat("body") {
            Side::Response
        } else {
            self.pos += "req".len();
            Side::Request
        };
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    if self.eat("*") {
                        path.push(Segment::Any);
                        continue;
                    }
                    let start = self.pos;
                    while self.peek().is_some_and(is_ident_char) {
                        self.bump();
                    }
                    if start == self.pos {
                        return Err(self
                            .error("expected a key name after `.` (quote odd keys: [\"a key\"])"));
                    }
                    path.push(Segment::Key(self.src[start..self.pos].to_owned()));
                }
                Some('[') => {
                    self.pos += 1;
                    let seg = match self.peek() {
                        Some('*') => {
                            self.pos += 1;
                            Segment::Any
                        }
                        Some('"' | '\'') => Segment::Key(self.quoted()?),
                        Some(c) if c.is_ascii_digit() => {
                            let start = self.pos;
                            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                                self.bump();
                            }
                            let n = self.src[start..self.pos]
                                .parse::<usize>()
                                .map_err(|_| self.error_at(start, "index too large".to_owned()))?;
                            Segment::Index(n)
                        }
                        _ => {
                            return Err(
                                self.error("expected an index, `*` or a quoted key after `[`")
                            )
                        }
                    };
                    if !self.eat("]") {
                        return Err(self.error("expected `]`"));
                    }
                    path.push(seg);
                }
                _ => break,
            }
        }
        self.ws();
        let Some((sym, cmp, _)) = COMPARISONS
            .iter()
            .find(|(sym, _, _)| self.rest().starts_with(sym))
        else {
            return Ok(Term::Path(PathPredicate::new(side, path, None)));
        };
        self.pos += sym.len();
        self.ws();
        let lit_at = self.pos;
        let literal = if matches!(self.peek(), Some('"' | '\'')) {
            Literal::Text(self.quoted()?)
        } else {
            let w = self.value()?;
            if w.is_empty() {
                return Err(self.error_at(lit_at, format!("expected a value after `{sym}`")));
            }
            match parse_number(&w) {
                Some(value) => Literal::Number { text: w, value },
                None => Literal::Text(w),
            }
        };
        Ok(Term::Path(PathPredicate::new(
            side,
            path,
            Some((*cmp, literal)),
        )))
    }
}
