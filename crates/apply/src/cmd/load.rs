//! Reads manifests for the API commands: `-f FILE`, `-f DIR` (its `.yaml`/`.yml`/`.json` files, sorted) or `-f -`
//! (standard input), split into documents, each remembered with the file and line it starts at so errors from
//! the server can point back at it.

use std::fmt;
use std::io::Read;
use std::path::Path;

use fos_api::Object;

/// Where an object was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file (`-` for standard input).
    pub file: String,
    /// The line its document starts at (1-based).
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One object read from a manifest.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it came from.
    pub source: Source,
    /// The object.
    pub object: Object,
}

/// A manifest that cannot be read.
#[derive(Debug)]
pub struct ManifestError(pub String);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ManifestError {}

/// Reads every object of `paths`.
pub fn load(paths: &[String]) -> anyhow::Result<Vec<Loaded>> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            out.extend(parse("-", &text)?);
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| ManifestError(format!("{p}: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| ManifestError(format!("{}: {e}", f.display())))?;
                out.extend(parse(&f.display().to_string(), &text)?);
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| ManifestError(format!("{p}: {e}")))?;
            out.extend(parse(p, &text)?);
        }
    }
    if out.is_empty() {
        return Err(ManifestError(format!("no objects found in {}", paths.join(", "))).into());
    }
    Ok(out)
}

/// Splits `text` into YAML documents and decodes each as an object.
pub fn parse(file: &str, text: &str) -> Result<Vec<Loaded>, ManifestError> {
    let mut docs: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push((i + 2, String::new()));
            continue;
        }
        if let Some((_, d)) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    let mut out = Vec::new();
    for (line, doc) in docs {
        let source = Source { file: file.to_string(), line };
        let value: serde_json::Value = serde_yaml_ng::from_str(&doc).map_err(|e| {
            let at = e.location().map(|l| line + l.line() - 1).unwrap_or(line);
            ManifestError(format!("{file}:{at}: {e}"))
        })?;
        if value.is_null() {
            continue;
        }
        let object = Object::from_value(value).map_err(|e| ManifestError(format!("{source}: {e}")))?;
        out.push(Loaded { source, object });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_start_line() {
        let text = "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: a}\nspec: {kind: native, command: [sleep, '1']}\n---\n\n---\napiVersion: fos/v1\nkind: Entity\nmetadata: {name: b}\nspec: {kind: native, command: [sleep, '1']}\n";
        let objs = parse("x.yaml", text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].source.line, 8);
        assert_eq!(objs[1].object.name(), "b");
    }

    #[test]
    fn a_bad_object_names_file_and_line() {
        let text =
            "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: a}\nspec: {kind: native, command: [x], bogus: 1}\n";
        let e = parse("x.yaml", text).unwrap_err();
        assert!(e.0.starts_with("x.yaml:1: "), "{}", e.0);
        assert!(e.0.contains("bogus"), "{}", e.0);
    }
}
