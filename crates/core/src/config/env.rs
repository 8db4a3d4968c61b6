//! `${VAR}` and `${VAR:-default}` expansion in YAML scalars (`$${` writes a literal `${`).
//!
//! Expansion happens on parsed scalars rather than on the raw text, so a variable can never inject
//! YAML structure, and every error still points at the scalar's own line and column.

use super::de::{child_index, child_key};
use super::node::{Node, NodeKind};

/// A variable that was needed but not set, with where it was used.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingVar {
    /// The variable name.
    pub name: String,
    /// Where it was used.
    pub node: Node,
    /// YAML path.
    pub path: String,
    /// Why (unset, or malformed reference).
    pub message: String,
}

/// Expands one string. `Ok(None)` when it has no reference.
pub fn expand_str(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, (String, String)> {
    if !s.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            changed = true;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                (
                    String::new(),
                    format!(
                        "unterminated `${{` in {s:?}: write `${{NAME}}`, or `$${{` for a literal"
                    ),
                )
            })?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err((
                    name.to_owned(),
                    format!("`${{{inner}}}` is not a valid reference: names use A-Z, 0-9 and _"),
                ));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err((
                        name.to_owned(),
                        format!(
                            "environment variable `{name}` is not set (set it, or give a default: `${{{name}:-value}}`)"
                        ),
                    ));
                }
            }
            rest = &tail[end + 1..];
            changed = true;
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(changed.then_some(out))
}

/// Expands every string scalar in the tree (map keys excluded), collecting every missing variable.
pub fn interpolate(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<MissingVar>,
) {
    match &mut node.kind {
        NodeKind::Str(s) => match expand_str(s, lookup) {
            Ok(Some(v)) => {
                node.reference = Some(std::mem::replace(s, v).into_boxed_str());
                node.interpolated = true;
            }
            Ok(None) => {}
            Err((name, message)) => errors.push(MissingVar {
                name,
                node: node.clone(),
                path: path.to_owned(),
                message,
            }),
        },
        NodeKind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &child_index(path, i), lookup, errors);
            }
        }
        NodeKind::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let key = k.scalar_text().unwrap_or_default();
                let p = child_key(path, &key);
                // Keys are names (pipelines, options): `${VAR}` is not expanded in them, so
                // say so rather than leave a pipeline literally named `${X}`.
                if key.replace("$${", "").contains("${") {
                    errors.push(MissingVar {
                        name: String::new(),
                        node: k.clone(),
                        path: p.clone(),
                        message: format!(
                            "`${{...}}` is not expanded in keys (`{key}`): write the name itself; only values take `${{VAR}}`"
                        ),
                    });
                }
                interpolate(v, &p, lookup, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka:9092".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_default_and_escaped_references() {
        assert_eq!(
            expand_str("${HOST}", &env).unwrap().as_deref(),
            Some("kafka:9092")
        );
        assert_eq!(
            expand_str("x-${NOPE:-dflt}-y", &env).unwrap().as_deref(),
            Some("x-dflt-y")
        );
        assert_eq!(
            expand_str("${EMPTY:-d}", &env).unwrap().as_deref(),
            Some("d"),
            ":- applies to empty too"
        );
        assert_eq!(expand_str("${EMPTY}", &env).unwrap().as_deref(), Some(""));
        assert_eq!(
            expand_str("$${HOST} costs $5", &env).unwrap().as_deref(),
            Some("${HOST} costs $5")
        );
        assert_eq!(expand_str("no refs", &env).unwrap(), None);
    }

    #[test]
    fn missing_and_malformed_references_are_errors_naming_the_variable() {
        let (name, msg) = expand_str("${NOPE}", &env).unwrap_err();
        assert_eq!(name, "NOPE");
        assert!(msg.contains("`NOPE` is not set"), "{msg}");
        assert!(
            expand_str("${HOST", &env)
                .unwrap_err()
                .1
                .contains("unterminated")
        );
        assert!(
            expand_str("${BAD NAME}", &env)
                .unwrap_err()
                .1
                .contains("not a valid reference")
        );
    }

    #[test]
    fn tree_expansion_marks_nodes_and_reports_paths() {
        let mut n: Node = serde_saphyr::from_str("a: ${HOST}\nb: [x, '${MISSING}']\n").unwrap();
        let mut errors = Vec::new();
        interpolate(&mut n, "", &env, &mut errors);
        assert_eq!(n.get("a").unwrap().as_str(), Some("kafka:9092"));
        assert!(n.get("a").unwrap().interpolated);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "b[1]");
        assert_eq!(errors[0].node.location.line, 2);
    }
}
