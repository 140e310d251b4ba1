//! The Docker MCP gateway's `{{server.param|filter|...}}` volume templates,
//! with parameter values from `--param server.param=VALUE` (repeat the flag for
//! a list). Filters: `volume` (P becomes P:P), `volume-target` and `into`
//! (the value as is, a list spread into several volumes), `first`, `last`,
//! `or:DEFAULT` (`or:[]` is the empty list), applied in the order written.
//! Anything else is refused, and so is a parameter of another server: the
//! gateway evaluates a server's templates against its own configuration.

use super::tree::{Doc, Node};
use super::Ctx;
use crate::diag::{quote, Code, Diagnostic};

/// One volume spec produced by a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    pub text: String,
    /// The parameters the spec used.
    pub params: Vec<String>,
    /// Whether the host side (the start of the spec) came from a parameter.
    pub src_from_param: bool,
}

enum Term<'a> {
    Lit(&'a str),
    Expr(&'a str),
}

/// Expands `template`, a volume of the server `server`.
pub fn expand(
    doc: &Doc,
    node: &Node,
    path: &str,
    template: &str,
    server: &str,
    ctx: &mut Ctx,
) -> Result<Vec<Expanded>, Diagnostic> {
    let bad = |msg: String| doc.error(Code::ImportTemplate, node, path, msg);
    let mut terms = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find("{{") {
            Some(0) => {
                let end = rest
                    .find("}}")
                    .ok_or_else(|| bad(format!("unterminated {{{{ in {}", quote(template))))?;
                terms.push(Term::Expr(&rest[2..end]));
                rest = &rest[end + 2..];
            }
            found => {
                let end = found.unwrap_or(rest.len());
                let lit = &rest[..end];
                if lit.contains(['{', '}']) {
                    return Err(bad(format!("stray brace in {}", quote(template))));
                }
                terms.push(Term::Lit(lit));
                rest = &rest[end..];
            }
        }
    }
    // Each term's values and, for a `--param` value, its key (a default is the
    // publisher's text, not a parameter the user passed).
    let mut values: Vec<(Vec<String>, Option<String>)> = Vec::new();
    for t in &terms {
        match t {
            Term::Lit(l) => values.push((vec![(*l).to_owned()], None)),
            Term::Expr(e) => {
                let (key, v, given) = eval(doc, node, path, e, server, ctx)?;
                values.push((v, given.then_some(key)));
            }
        }
    }
    let src_from_param = matches!(values.first(), Some((_, Some(_))));
    let params: Vec<String> = values.iter().filter_map(|(_, k)| k.clone()).collect();
    if let [(list, _)] = values.as_slice() {
        return Ok(list
            .iter()
            .map(|text| Expanded {
                text: text.clone(),
                params: params.clone(),
                src_from_param,
            })
            .collect());
    }
    let mut text = String::new();
    for (list, key) in &values {
        match list.as_slice() {
            [] => return Ok(Vec::new()),
            [one] => text.push_str(one),
            _ => {
                return Err(Diagnostic::new(
                    Code::ImportParamInvalid,
                    format!(
                        "--param {} has {} values, but {path} uses it inside a single volume ({})",
                        key.as_deref().unwrap_or("?"),
                        list.len(),
                        quote(template)
                    ),
                )
                .at(doc.location(node)))
            }
        }
    }
    Ok(vec![Expanded {
        text,
        params,
        src_from_param,
    }])
}

/// A template expression's key, its values, and whether they came from
/// `--param` (else from its `or:` default).
fn eval(
    doc: &Doc,
    node: &Node,
    path: &str,
    expr: &str,
    server: &str,
    ctx: &mut Ctx,
) -> Result<(String, Vec<String>, bool), Diagnostic> {
    let mut parts = expr.split('|');
    let key = parts.next().unwrap_or_default().trim().to_owned();
    // The gateway names each filter trimmed, but takes a default only from
    // `or:` right after the `|` (`strings.HasPrefix(f, "or:")`): ` or:X` gives
    // it no default, so it gives capgate none either; it is refused below.
    let filters: Vec<&str> = parts
        .map(|f| {
            if f.trim_start().starts_with("or:") {
                f
            } else {
                f.trim()
            }
        })
        .collect();
    if key.is_empty() {
        return Err(doc.error(
            Code::ImportTemplate,
            node,
            path,
            format!("empty parameter name in {{{{{expr}}}}}"),
        ));
    }
    // The gateway evaluates a server's templates against that server's own
    // configuration only: another server's parameter is never its value.
    if !key.starts_with(&format!("{server}.")) {
        return Err(doc.error(
            Code::ImportTemplate,
            node,
            path,
            format!(
                "{{{{{expr}}}}} names {}, not a parameter of {}: the gateway gives a server only its own configuration",
                quote(&key),
                quote(server)
            ),
        ));
    }
    if let Some(other) = filters.iter().find(|f| {
        !matches!(
            **f,
            "volume" | "volume-target" | "into" | "safe" | "first" | "last"
        ) && !f.starts_with("or:")
    }) {
        return Err(doc.error(
            Code::ImportTemplate,
            node,
            path,
            format!(
                "unsupported template filter {} in {{{{{expr}}}}}",
                quote(other)
            ),
        ));
    }
    let given = ctx.params.get(&key).cloned();
    if given.is_some() {
        ctx.used.insert(key.clone());
    } else if !filters.iter().any(|f| f.starts_with("or:")) {
        return Err(Diagnostic::new(
            Code::ImportParamMissing,
            format!("{path} needs the parameter {key}: pass --param {key}=/host/path (repeat it for several paths)"),
        )
        .at(doc.location(node))
        .with_help(format!("the publisher's volume template is {}", quote(doc_text(node)))));
    }
    let from_param = given.is_some();
    let mut value: Vec<String> = given.unwrap_or_default();
    // The filters in the order written, as the gateway applies them: an
    // `or:` default fills an empty value where it stands in the chain.
    for f in &filters {
        if let Some(default) = f.strip_prefix("or:") {
            if value.is_empty() && !matches!(default, "[]" | "") {
                value = vec![default.to_owned()];
            }
            continue;
        }
        match *f {
            "volume" => value = value.into_iter().map(|v| format!("{v}:{v}")).collect(),
            "volume-target" | "into" | "safe" => {}
            "first" => value.truncate(1),
            "last" => {
                if let Some(l) = value.pop() {
                    value = vec![l];
                }
            }
            _ => {}
        }
    }
    Ok((key, value, from_param))
}

fn doc_text(node: &Node) -> &str {
    node.as_str().unwrap_or_default()
}
