//! The filter language: `cap:Fetch* & status:5xx`, `event:TeleportFinish`, `body.Info[0].SimPort ==
//! 13005`, free text, `!`, `&`, `|` and parentheses (reference: `docs/filters.md`).
//!
//! One table of terms ([`parse::TERMS`]) and one of comparison operators drive both the parser and
//! [`help`] (mitmproxy's flowfilter idea). [`parse`] gives an [`Expr`] whose `Display` is canonical and
//! parses back to the same tree; errors carry a 1-based column. [`Filter::matches`] evaluates over a
//! [`Record`], decoding bodies lazily and at most once per evaluation.
//!
//! This module owns the language and its evaluation. It must not touch records (read-only), files or
//! the network, and decodes bodies only through [`decode_body`].

mod ast;
mod eval;
mod kept;
pub mod parse;

use std::fmt;

pub use ast::{Cmp, Expr, Glob, Literal, PathPredicate, Segment, Side, StatusPattern, Term, Text};
pub use eval::{decode_body, Match};
pub use kept::{keeps, KeptIds, KEPT_IDS_REMEMBERED};
pub use parse::{parse, ParseError, COMPARISONS, FORMS, TERMS};

use crate::record::Record;

/// A parsed filter, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses `s`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        parse(s).map(|expr| Self { expr })
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether `record` matches.
    pub fn matches(&self, record: &Record) -> bool {
        eval::eval(&self.expr, &eval::Ctx::new(record), None)
    }

    /// `Some(matched values)` when `record` matches (path predicates report what they matched, for
    /// highlighting; other terms report nothing), `None` when it does not.
    pub fn matches_detail(&self, record: &Record) -> Option<Vec<Match>> {
        let mut found = Vec::new();
        eval::eval(&self.expr, &eval::Ctx::new(record), Some(&mut found)).then_some(found)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl std::str::FromStr for Filter {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The filter language's help text, generated from the term and operator tables.
pub fn help() -> String {
    let mut rows: Vec<(String, &str)> = TERMS
        .iter()
        .map(|t| (format!("{}:{}", t.code, t.arg), t.help))
        .collect();
    rows.extend(FORMS.iter().map(|(form, help)| ((*form).to_owned(), *help)));
    let comparisons: Vec<(String, &str)> = COMPARISONS
        .iter()
        .map(|(sym, _, help)| ((*sym).to_owned(), *help))
        .collect();
    let width = rows
        .iter()
        .chain(&comparisons)
        .map(|(f, _)| f.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from("Filter terms:\n");
    for (form, help) in &rows {
        out.push_str(&format!("  {form:width$}  {help}\n"));
    }
    out.push_str("Comparison operators (OP):\n");
    for (form, help) in &comparisons {
        out.push_str(&format!("  {form:width$}  {help}\n"));
    }
    out.push_str(
        "GLOBs use * (any run) and ? (one character) and ignore case. Quote values with spaces or \
         special characters: cap:\"Odd Name\", \"free text\".\n",
    );
    out
}

#[cfg(test)]
mod tests;
