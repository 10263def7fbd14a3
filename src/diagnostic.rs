//! Problems found in the files an admin wrote, with their place.
//!
//! Every message names `file:line:column`; the human rendering shows the
//! offending line (miette), the machine rendering is a JSON list. Sources are
//! kept so a snippet can be shown long after parsing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// How bad a diagnostic is. Only errors make a declaration invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem at one place. `line` and `column` are 1-based; 0 means the
/// whole file (e.g. "file is empty").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &str, line: u64, column: u64, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            line,
            column,
            severity: Severity::Error,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column`, or just `file` when the position is unknown.
    pub fn place(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// The text of every file read, by display name, for snippets.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    texts: BTreeMap<String, String>,
}

impl Sources {
    pub fn insert(&mut self, file: &str, text: &str) {
        self.texts.insert(file.to_owned(), text.to_owned());
    }

    pub fn get(&self, file: &str) -> Option<&str> {
        self.texts.get(file).map(String::as_str)
    }

    /// Every (file, text), in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.texts.iter().map(|(f, t)| (f.as_str(), t.as_str()))
    }
}

/// Renders diagnostics for people: a miette report per diagnostic, with the
/// offending line when the source is known. `color` is decided by the caller
/// (TTY and NO_COLOR are the shell's business).
pub fn render_human(diags: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_wrap_lines(false);
    let mut out = String::new();
    for d in diags {
        let severity = match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        };
        let mut diag = miette::MietteDiagnostic::new(format!("{}: {}", d.place(), d.message))
            .with_severity(severity);
        if let Some(help) = &d.help {
            diag = diag.with_help(help.clone());
        }
        // A snippet of a minified or hostile one-line file would flood the
        // terminal; the position in the message is enough there.
        let source = sources
            .get(&d.file)
            .filter(|_| d.line > 0)
            .filter(|text| line_len(text, d.line) <= MAX_SNIPPET_LINE);
        let rendered = match source {
            Some(text) => {
                let offset = byte_offset(text, d.line, d.column);
                let len = token_len(&text[offset..]);
                diag = diag.with_label(miette::LabeledSpan::at(offset..offset + len, "here"));
                let report = miette::Report::new(diag)
                    .with_source_code(miette::NamedSource::new(&d.file, text.to_owned()));
                render_one(&handler, report.as_ref())
            }
            None => render_one(&handler, &diag),
        };
        out.push_str(&rendered);
    }
    out
}

fn render_one(handler: &miette::GraphicalReportHandler, diag: &dyn miette::Diagnostic) -> String {
    let mut s = String::new();
    if handler.render_report(&mut s, diag).is_err() {
        // The handler only fails on a broken fmt::Write; String never is.
        let _ = writeln!(s, "{diag}");
    }
    s
}

/// Longest line shown in a snippet, in bytes.
const MAX_SNIPPET_LINE: usize = 300;

fn line_len(text: &str, line: u64) -> usize {
    text.split('\n')
        .nth(line.saturating_sub(1) as usize)
        .map_or(0, str::len)
}

/// Byte offset of a 1-based (line, column-in-characters) position, clamped
/// to the text so a stale or odd position can never panic.
fn byte_offset(text: &str, line: u64, column: u64) -> usize {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            let col = column.saturating_sub(1) as usize;
            let within = l
                .char_indices()
                .nth(col)
                .map(|(b, _)| b)
                .unwrap_or(l.trim_end_matches('\n').len());
            return offset + within;
        }
        offset += l.len();
    }
    text.len()
}

/// Underline the word at the position, at least one character.
fn token_len(rest: &str) -> usize {
    let word: usize = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']' | ':'))
        .map(char::len_utf8)
        .sum();
    word.max(rest.chars().next().map_or(0, char::len_utf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_clamped_and_char_based() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(byte_offset(text, 1, 1), 0);
        assert_eq!(byte_offset(text, 2, 3), 8);
        assert_eq!(byte_offset(text, 2, 99), 11);
        assert_eq!(byte_offset(text, 9, 1), text.len());
    }

    #[test]
    fn human_rendering_names_the_place_and_shows_the_line() {
        let mut sources = Sources::default();
        sources.insert("team.yaml", "version: 1\nteam: {id: \"1\"}\nusers: nope\n");
        let d = Diagnostic::error("team.yaml", 3, 8, "users must be a list");
        let out = render_human(&[d], &sources, false);
        assert!(out.contains("team.yaml:3:8: users must be a list"), "{out}");
        assert!(out.contains("users: nope"), "{out}");
    }
}
