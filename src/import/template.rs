//! The Docker MCP gateway's `{{server.param|filter|...}}` volume templates,
//! with parameter values from `--param server.param=VALUE` (repeat the flag for
//! a list). Filters: `volume` (P becomes P:P), `volume-target` and `into`
//! (the value as is, a list spread into several volumes), `first`, `last`,
//! `or:DEFAULT` (`or:[]` is the empty list). Anything else is refused.

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

pub fn expand(
    doc: &Doc,
    node: &Node,
    path: &str,
    template: &str,
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
    let mut values: Vec<(Vec<String>, Option<String>)> = Vec::new();
    for t in &terms {
        match t {
            Term::Lit(l) => values.push((vec![(*l).to_owned()], None)),
            Term::Expr(e) => {
                let (key, v) = eval(doc, node, path, e, ctx)?;
                values.push((v, Some(key)));
            }
        }
    }
    let src_from_param = matches!(terms.first(), Some(Term::Expr(_)));
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

fn eval(
    doc: &Doc,
    node: &Node,
    path: &str,
    expr: &str,
    ctx: &mut Ctx,
) -> Result<(String, Vec<String>), Diagnostic> {
    let mut parts = expr.split('|');
    let key = parts.next().unwrap_or_default().trim().to_owned();
    let filters: Vec<&str> = parts.map(str::trim).collect();
    if key.is_empty() {
        return Err(doc.error(
            Code::ImportTemplate,
            node,
            path,
            format!("empty parameter name in {{{{{expr}}}}}"),
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
    let mut value: Vec<String> = match ctx.params.get(&key) {
        Some(v) => {
            ctx.used.insert(key.clone());
            v.clone()
        }
        None => match filters.iter().find_map(|f| f.strip_prefix("or:")) {
            Some("[]") | Some("") => Vec::new(),
            Some(default) => vec![default.to_owned()],
            None => {
                return Err(Diagnostic::new(
                    Code::ImportParamMissing,
                    format!("{path} needs the parameter {key}: pass --param {key}=/host/path (repeat it for several paths)"),
                )
                .at(doc.location(node))
                .with_help(format!("the publisher's volume template is {}", quote(doc_text(node)))));
            }
        },
    };
    for f in &filters {
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
    Ok((key, value))
}

fn doc_text(node: &Node) -> &str {
    node.as_str().unwrap_or_default()
}
