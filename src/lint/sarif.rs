//! SARIF 2.1.0 output for code scanning (GitHub, GitLab, Azure DevOps).
//!
//! One run, tool `capgate` with every rule of the registry as a
//! `reportingDescriptor` (so a viewer can show the doc of a rule without
//! results), one `result` per finding located at the capability's JSON string
//! (`startLine`, `startColumn` in Unicode code points, as capgate's
//! diagnostics count them: `columnKind` says so). `tests/lint.rs` validates
//! the output against the OASIS schema (`fixtures/lint/schema/`).

use serde_json::{json, Value};

use super::{Finding, Report, RULES};

/// The SARIF `uri` of a manifest path: relative paths stay relative (code
/// scanning resolves them against the repository root), characters outside
/// RFC 3986's unreserved set and `/` are percent-encoded.
pub fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn location(f: &Finding) -> Value {
    let logical = match &f.tool {
        Some(t) => format!("tools/{t}/capabilities/{}", f.capability_index),
        None => format!("serverCapabilities/{}", f.capability_index),
    };
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri(&f.location.file)},
            "region": {
                "startLine": f.location.line,
                "startColumn": f.location.column,
                "snippet": {"text": f.capability},
            },
        },
        "logicalLocations": [{"fullyQualifiedName": logical, "kind": "member"}],
    })
}

/// The SARIF log of every report.
pub fn to_sarif(reports: &[Report]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.doc},
                "help": {"text": format!("{}\n\nRun `capgate lint --explain {}`; docs/lint.md#{}.", r.doc, r.id, r.id)},
                "defaultConfiguration": {"level": r.level.as_str()},
            })
        })
        .collect();
    let results: Vec<Value> = reports
        .iter()
        .flat_map(|r| &r.findings)
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule).expect("registered rule"),
                "level": f.level.as_str(),
                "message": {"text": f.message},
                "locations": [location(f)],
            });
            if let Some(rel) = &f.related {
                let related = Finding {
                    location: rel.location.clone(),
                    tool: rel.tool.clone(),
                    capability_index: rel.capability_index,
                    capability: rel.capability.clone(),
                    related: None,
                    ..f.clone()
                };
                let mut loc = location(&related);
                loc["id"] = json!(1);
                loc["message"] = json!({"text": "the other capability"});
                result["relatedLocations"] = json!([loc]);
            }
            result
        })
        .collect();
    let artifacts: Vec<Value> = reports
        .iter()
        .map(|r| json!({"location": {"uri": uri(&r.file)}}))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "capgate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "artifacts": artifacts,
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_what_is_not_a_path_character() {
        assert_eq!(uri("fixtures/lint/a.json"), "fixtures/lint/a.json");
        assert_eq!(uri("<stdin>"), "%3Cstdin%3E");
        assert_eq!(uri("a b/ü#?.json"), "a%20b/%C3%BC%23%3F.json");
    }
}
