//! WAC documents (`app.wac`), in the language `wac compose` reads: the packages a
//! document names (`new ns:pkg { … }`, `import x: ns:pkg/iface`, `targets`) are found by
//! the caller (`--dep`, the lock, `deps/`), then `wac-parser` resolves the document into
//! a graph. Errors name the document's line and column.

use std::path::Path;

use indexmap::IndexMap;
use miette::Diagnostic;
use semver::Version;
use wac_graph::types::BorrowedPackageKey;
use wac_parser::{Document, Expr, ImportType, InstantiationArgument, PrimaryExpr, Statement};

use super::plug::Registered;
use super::{Component, ComposeError, ComposeOptions, Composition, finish};

/// A package a document names: `ns:pkg`, its version, where it is first named.
struct Named<'a> {
    name: &'a str,
    version: Option<&'a Version>,
    offset: usize,
}

/// Line and column (1-based, in characters) of byte `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    // A parser's offset may fall inside a character (found by fuzzing): count from the
    // character it is in.
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// How deep brackets may nest in a document: `wac-parser` recurses once a level, and a
/// few thousand levels overflow the stack (found by `cargo fuzz run wac`); no composition
/// needs more than a handful.
pub(super) const MAX_NESTING: usize = 64;

/// The byte offset where `source` first nests brackets (`(`, `{`, `[`, `<`) deeper than
/// [`MAX_NESTING`], outside comments and strings; `None` when it never does.
fn too_deep(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let (mut depth, mut i) = (0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i += bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(bytes.len() - i);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += source[i + 2..]
                    .find("*/")
                    .map_or(bytes.len() - i, |end| end + 4);
                continue;
            }
            b'"' => {
                i += 1 + bytes[i + 1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .unwrap_or(bytes.len() - i - 1);
            }
            // `->` is an arrow, not a closing bracket.
            b'-' if bytes.get(i + 1) == Some(&b'>') => i += 1,
            b'(' | b'{' | b'[' | b'<' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b')' | b'}' | b']' | b'>' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A parser or resolver error, placed at its first label.
fn located(path: &Path, source: &str, e: &(dyn Diagnostic + 'static)) -> ComposeError {
    let offset = e
        .labels()
        .and_then(|mut labels| labels.next())
        .map_or(0, |label| label.offset());
    let (line, column) = position(source, offset);
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    ComposeError::Wac {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

fn visit_expr<'a>(expr: &'a Expr<'a>, out: &mut Vec<Named<'a>>) {
    match &expr.primary {
        PrimaryExpr::New(new) => {
            out.push(Named {
                name: new.package.name,
                version: new.package.version.as_ref(),
                offset: new.package.span.offset(),
            });
            for argument in &new.arguments {
                if let InstantiationArgument::Named(named) = argument {
                    visit_expr(&named.expr, out);
                }
            }
        }
        PrimaryExpr::Nested(nested) => visit_expr(&nested.inner, out),
        PrimaryExpr::Ident(_) => {}
    }
}

/// The packages `document` names, each once, in the order first named.
fn packages<'a>(document: &'a Document<'a>) -> Vec<Named<'a>> {
    let mut out = Vec::new();
    if let Some(targets) = &document.directive.targets {
        out.push(Named {
            name: targets.name,
            version: targets.version.as_ref(),
            offset: targets.span.offset(),
        });
    }
    for statement in &document.statements {
        match statement {
            Statement::Import(import) => {
                if let ImportType::Package(path) = &import.ty {
                    out.push(Named {
                        name: path.name,
                        version: path.version.as_ref(),
                        offset: path.span.offset(),
                    });
                }
            }
            Statement::Let(binding) => visit_expr(&binding.expr, &mut out),
            Statement::Export(export) => visit_expr(&export.expr, &mut out),
            Statement::Type(_) => {}
        }
    }
    let mut seen = Vec::new();
    out.retain(|n| {
        let key = (n.name, n.version);
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    out
}

/// Finds a package's component (`ns:pkg`, the version asked for), or says where it looked.
pub type FindPackage<'a> = dyn FnMut(&str, Option<&Version>) -> Result<Component, String> + 'a;

/// Composes the WAC document at `path` (its text is `source`). `find` gives the
/// component of a package (`ns:pkg`, and the version the document asks for), or says
/// where it looked.
pub fn compose_wac(
    path: &Path,
    source: &str,
    find: &mut FindPackage<'_>,
    options: ComposeOptions,
) -> Result<Composition, ComposeError> {
    if let Some(offset) = too_deep(source) {
        let (line, column) = position(source, offset);
        return Err(ComposeError::Wac {
            path: path.to_owned(),
            line,
            column,
            message: format!("brackets nest deeper than {MAX_NESTING} levels"),
        });
    }
    let document = Document::parse(source).map_err(|e| located(path, source, &e))?;
    let mut found: Vec<(BorrowedPackageKey<'_>, Component)> = Vec::new();
    for named in packages(&document) {
        if named.name == document.directive.package.name {
            continue;
        }
        let component = find(named.name, named.version).map_err(|looked| {
            let (line, _) = position(source, named.offset);
            ComposeError::MissingPackage {
                path: path.to_owned(),
                line,
                package: match named.version {
                    Some(v) => format!("{}@{v}", named.name),
                    None => named.name.to_owned(),
                },
                looked,
            }
        })?;
        found.push((
            BorrowedPackageKey::from_name_and_version(named.name, named.version),
            component,
        ));
    }
    // The bytes move into the resolution (no copy of a large input).
    let packages: IndexMap<BorrowedPackageKey<'_>, Vec<u8>> = found
        .iter_mut()
        .map(|(key, component)| (*key, std::mem::take(&mut component.bytes)))
        .collect();
    let resolution = document
        .resolve(packages)
        .map_err(|e| located(path, source, &e))?;
    let graph = resolution.into_graph();
    let mut registered = Vec::new();
    let mut inputs = Vec::new();
    for (key, component) in &found {
        if let Some((id, _)) = graph.get_package_by_name(key.name, key.version) {
            registered.push(Registered {
                id,
                shown: component.shown.clone(),
            });
            inputs.push(component);
        }
    }
    finish(&graph, &registered, &inputs, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `cargo fuzz run wac`: an error offset inside a multi-byte character
    /// panicked (a slice off a char boundary) instead of placing the error.
    #[test]
    fn an_offset_inside_a_character_is_placed_at_it() {
        let source = "package a:b;\n// ؚ";
        let inside = source.find('ؚ').unwrap() + 1;
        assert_eq!(position(source, inside), (2, 4));
        assert_eq!(position(source, usize::MAX), (2, 5));
    }

    /// Found by `cargo fuzz run wac`: 20,000 nested parentheses (or `new … { … }`, or
    /// `list<…>`) overflowed `wac-parser`'s stack; refused where they get too deep.
    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = |open: &str, close: &str| {
            format!(
                "package a:b;\nlet x = {}y{};\n",
                open.repeat(20_000),
                close.repeat(20_000)
            )
        };
        for source in [
            deep("(", ")"),
            deep("new a:b { a: ", " }"),
            deep("list<", ">"),
        ] {
            let mut find = |_: &str, _: Option<&Version>| Err("none".to_owned());
            let Err(ComposeError::Wac { line, message, .. }) = compose_wac(
                Path::new("app.wac"),
                &source,
                &mut find,
                ComposeOptions::default(),
            ) else {
                panic!("not refused");
            };
            assert_eq!(line, 2);
            assert!(message.contains("deeper than 64"), "{message}");
        }
        // What real documents hold passes: arrows, comments and strings do not count.
        let fine = "package a:b; // ((((\n/* {{{{ */ let x = new a:b { \"(\": y, ...  };\nimport f: func() -> u32;\n";
        assert_eq!(too_deep(fine), None);
        assert_eq!(too_deep(&"(".repeat(64)), None);
        assert_eq!(too_deep(&"(".repeat(65)), Some(64));
    }
}
