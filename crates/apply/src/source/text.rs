//! Reading YAML (multi-document) and JSON text, with positions: each document becomes a `serde_json::Value` and a
//! [`PathMap`] from every path in it (`spec.components[1].need[0]`) to where its key and value are written.

use std::collections::BTreeMap;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, Marker, ScalarOwned, YamlDataOwned};
use serde_json::Value;

use super::Position;

/// Where every node of one document is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMap {
    values: BTreeMap<String, Position>,
    keys: BTreeMap<String, Position>,
}

impl PathMap {
    /// Where the value at `path` is written, if it is.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Where the mapping key naming `path` is written, if it is.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// The position of `path`, or of its nearest written ancestor (a missing field is reported where its mapping
    /// is); the document's start when nothing matches.
    pub fn locate(&self, path: &str) -> Position {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match parent(p) {
                Some(up) => p = up,
                None => return self.values.get("").copied().unwrap_or_default(),
            }
        }
    }

    /// The position of the key naming `path` when written, else [`PathMap::locate`].
    pub fn locate_key(&self, path: &str) -> Position {
        self.key(path).unwrap_or_else(|| self.locate(path))
    }

    /// A map for a converted document: each `(new, old)` pair gives the positions under `old` to the paths under
    /// `new` (the longest `old` prefix wins); the document root keeps its position.
    pub fn rebased(&self, renames: &[(String, String)]) -> PathMap {
        let mut out = PathMap::default();
        if let Some(root) = self.values.get("") {
            out.values.insert(String::new(), *root);
        }
        for (target, source) in [(&mut out.values, &self.values), (&mut out.keys, &self.keys)] {
            for (new, old) in renames {
                for (path, pos) in source.iter() {
                    if let Some(rest) = strip_path_prefix(path, old) {
                        target.insert(join(new, rest), *pos);
                    }
                }
            }
        }
        out
    }
}

/// The parent of a path (`a.b[0]` -> `a.b` -> `a` -> ``), `None` for the root.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    })
}

/// `rest` when `path` is `prefix` followed by a segment boundary (`.`, `[` or nothing).
fn strip_path_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')).then_some(rest)
}

/// Appends a field or index suffix (`.x`, `[0]`, or a bare key) to a path.
pub(crate) fn join(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.strip_prefix('.')) {
        (true, Some(r)) => r.to_string(),
        _ => format!("{base}{rest}"),
    }
}

/// Appends a field name to a path.
pub(crate) fn field(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

/// Converts saphyr's character-based markers into byte offsets and 1-based columns.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `text`.
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The position of a (1-based line, 0-based character column) pair, `len` bytes long at most to the line's end.
    pub fn position(&self, line: usize, col: usize, len_chars: usize) -> Position {
        let line = line.clamp(1, self.starts.len());
        let start = self.starts[line - 1];
        let rest = &self.text[start..];
        let line_text = rest.split('\n').next().unwrap_or("");
        let offset = start + line_text.char_indices().nth(col).map_or(line_text.len(), |(i, _)| i);
        let tail = &self.text[offset..start + line_text.len()];
        let len = tail.char_indices().nth(len_chars).map_or(tail.len(), |(i, _)| i);
        Position { line, column: col + 1, offset, len: len.max(usize::from(!tail.is_empty())) }
    }

    fn at(&self, start: Marker, end: Marker) -> Position {
        let len = if end.line() == start.line() { end.col().saturating_sub(start.col()) } else { usize::MAX };
        self.position(start.line(), start.col(), len)
    }
}

/// A parse error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where.
    pub position: Position,
    /// What.
    pub message: String,
}

/// Parses every document of `text` (YAML, or JSON as its subset). Empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<(Value, PathMap)>, ParseError> {
    let lines = LineIndex::new(text);
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| ParseError {
        position: lines.position(e.marker().line(), e.marker().col(), 1),
        message: format!("not valid YAML/JSON: {}", e.info()),
    })?;
    let mut out = Vec::new();
    for doc in docs {
        if matches!(doc.data, YamlDataOwned::Value(ScalarOwned::Null)) {
            continue;
        }
        let mut map = PathMap::default();
        let value = convert(&doc, String::new(), &lines, &mut map)?;
        out.push((value, map));
    }
    Ok(out)
}

fn convert(
    node: &MarkedYamlOwned,
    path: String,
    lines: &LineIndex<'_>,
    map: &mut PathMap,
) -> Result<Value, ParseError> {
    let pos = lines.at(node.span.start, node.span.end);
    let value = match &node.data {
        YamlDataOwned::Value(s) => scalar(s),
        YamlDataOwned::Representation(s, _, _) => Value::String(s.clone()),
        YamlDataOwned::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(item, format!("{path}[{i}]"), lines, map)?);
            }
            Value::Array(out)
        }
        YamlDataOwned::Mapping(entries) => {
            let mut out = serde_json::Map::new();
            for (k, v) in entries {
                let key = match &k.data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                    YamlDataOwned::Value(ScalarOwned::Null) => "null".to_string(),
                    YamlDataOwned::Value(s) => match scalar(s) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => {
                        return Err(ParseError {
                            position: lines.at(k.span.start, k.span.end),
                            message: "mapping keys must be plain scalars".into(),
                        })
                    }
                };
                let child = field(&path, &key);
                map.keys.insert(child.clone(), lines.at(k.span.start, k.span.end));
                let value = convert(v, child, lines, map)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlDataOwned::Tagged(_, inner) => return convert(inner, path, lines, map),
        YamlDataOwned::Alias(_) => {
            return Err(ParseError { position: pos, message: "YAML aliases are not supported in manifests".into() })
        }
        YamlDataOwned::BadValue => return Err(ParseError { position: pos, message: "unreadable value".into() }),
    };
    map.values.insert(path, pos);
    Ok(value)
}

fn scalar(s: &ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(*b),
        ScalarOwned::Integer(i) => Value::from(*i),
        ScalarOwned::FloatingPoint(f) => {
            serde_json::Number::from_f64(f.into_inner()).map_or_else(|| Value::String(f.to_string()), Value::Number)
        }
        ScalarOwned::String(s) => Value::String(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines_and_columns() {
        let text = "a: 1\nspec:\n  components:\n    - name: db\n      need: [x, y]\n---\nb: true\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        let (v, map) = &docs[0];
        assert_eq!(v["spec"]["components"][0]["need"][1], "y");
        let p = map.value("spec.components[0].need[1]").unwrap();
        assert_eq!((p.line, p.column), (5, 17));
        assert_eq!(&text[p.offset..p.offset + p.len], "y");
        let k = map.key("spec.components[0].name").unwrap();
        assert_eq!((k.line, k.column), (4, 7));
        assert_eq!(map.locate("spec.components[0].entity.kind").line, 4, "nearest written ancestor");
        assert_eq!(docs[1].1.value("b").unwrap().line, 7);
    }

    #[test]
    fn json_is_read_with_positions() {
        let text = "{\n  \"name\": \"x\",\n  \"entity_data\": {\"cpu\": 1}\n}\n";
        let (v, map) = parse_documents(text).unwrap().remove(0);
        assert_eq!(v["entity_data"]["cpu"], 1);
        assert_eq!(map.value("entity_data.cpu").unwrap().line, 3);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.position.line >= 1 && e.message.contains("YAML"), "{e:?}");
    }

    #[test]
    fn rebasing_moves_positions_to_new_paths() {
        let (_, map) = parse_documents("entity_data:\n  memory: 512\n").unwrap().remove(0);
        let moved = map.rebased(&[("spec.memory".into(), "entity_data.memory".into())]);
        assert_eq!(moved.value("spec.memory").unwrap().line, 2);
        assert_eq!(moved.locate("spec.cpu").line, 1);
    }
}
