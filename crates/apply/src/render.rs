//! Printing diagnostics: the `FILE:LINE:COL: message` line (easy to grep and to jump to from an editor), then the
//! source line with the position underlined, then the hint.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::source::Diagnostic;

/// Renders one diagnostic with a snippet of `source` (the file's text, when known).
pub fn render(diagnostic: &Diagnostic, source: Option<&str>) -> String {
    let mut out = format!("{}: {}\n", location(diagnostic), diagnostic.message);
    let p = diagnostic.position;
    if let Some(line) = source.and_then(|s| s.lines().nth(p.line.saturating_sub(1))) {
        let number = p.line.to_string();
        let gutter = " ".repeat(number.len());
        let indent: String =
            line.chars().take(p.column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let width = source.and_then(|s| s.get(p.offset..p.offset + p.len)).map_or(1, |t| t.chars().count().max(1));
        let _ = writeln!(out, "{gutter} |");
        let _ = writeln!(out, "{number} | {line}");
        let _ = writeln!(out, "{gutter} | {indent}{}", "^".repeat(width));
        if let Some(h) = &diagnostic.hint {
            let _ = writeln!(out, "{gutter} = help: {h}");
        }
    } else if let Some(h) = &diagnostic.hint {
        let _ = writeln!(out, "  = help: {h}");
    }
    out
}

/// `FILE:LINE:COL`.
pub fn location(d: &Diagnostic) -> String {
    format!("{}:{}:{}", d.file, d.position.line, d.position.column)
}

/// Renders every diagnostic, sorted by file and position, with snippets from `sources`.
pub fn render_all(diagnostics: &[Diagnostic], sources: &BTreeMap<String, String>) -> String {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by(|a, b| (&a.file, a.position.offset).cmp(&(&b.file, b.position.offset)));
    sorted.dedup();
    sorted.iter().map(|d| render(d, sources.get(&d.file).map(String::as_str))).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Position;

    #[test]
    fn renders_location_snippet_and_hint() {
        let source = "a: 1\nneed: [b]\n";
        let d = Diagnostic {
            file: "x.yaml".into(),
            position: Position { line: 2, column: 8, offset: 12, len: 1 },
            message: "bad".into(),
            hint: Some("fix it".into()),
        };
        let text = render(&d, Some(source));
        assert_eq!(text, "x.yaml:2:8: bad\n  |\n2 | need: [b]\n  |        ^\n  = help: fix it\n");
    }
}
