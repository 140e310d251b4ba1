//! The fact schema: for every fact kind, its fields with their type, whether
//! they can be none, and what they mean. The rule view (`lower::View`), the
//! loader's `when` checks, `explain` and the field table of
//! docs/templates.md ("The fact model", checked by a test) all come from
//! this one table.

use crate::capability::Kind;
use crate::rules::{FactKind, WhenValue};

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    /// A non-negative integer.
    Int,
    /// Any string.
    Text,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A list of these strings (no `when` on it).
    List(&'static [&'static str]),
}

/// One field of a fact kind.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    /// Whether the value can be none.
    pub nullable: bool,
    pub doc: &'static str,
}

const fn f(name: &'static str, ty: FieldType, doc: &'static str) -> FieldDef {
    FieldDef {
        name,
        ty,
        nullable: false,
        doc,
    }
}

const fn null(name: &'static str, ty: FieldType, doc: &'static str) -> FieldDef {
    FieldDef {
        name,
        ty,
        nullable: true,
        doc,
    }
}

use FieldType::{Bool, Choice, Int, List, Text};

const BASELINE: &[FieldDef] = &[
    f(
        "nested",
        Bool,
        "an exec capability asked for `nestedSandbox=true`",
    ),
    f(
        "tmp_bound",
        Bool,
        "`/tmp` itself is declared (so no private tmpfs)",
    ),
    f(
        "var_tmp_bound",
        Bool,
        "`/var/tmp` itself is declared (so no private tmpfs there)",
    ),
    f(
        "run_bound",
        Bool,
        "`/run` itself is declared (so no private tmpfs there)",
    ),
    f("net", Bool, "any net capability is declared"),
    f("net_count", Int, "number of net facts"),
    f(
        "private_net",
        Bool,
        "a declared special-range address exists",
    ),
    f(
        "public_net",
        Bool,
        "a declared destination outside the special ranges exists",
    ),
    f(
        "fs_writable",
        Bool,
        "a writable fs path (create, write or delete) is declared",
    ),
    f("fs_count", Int, "number of fs facts"),
    f("writable_under_readonly", Bool, "a writable path inside a read-only declared directory exists (an fs fact with `under_readonly`)"),
    f("net_any", Bool, "`net:connect:*` (any host) is declared"),
    f("env", Bool, "any env capability is declared"),
    f("env_count", Int, "number of env facts"),
];

const FS: &[FieldDef] = &[
    f(
        "path",
        Text,
        "the path bound (a file path is the file; `/a/**` and `/a/*` are `/a`)",
    ),
    f(
        "glob",
        Choice(&["none", "children", "recursive"]),
        "`none`, `children` (`/*`), `recursive` (`/**`)",
    ),
    f(
        "actions",
        List(&["read", "create", "write", "delete"]),
        "of `read`, `create`, `write`, `delete`, after implications",
    ),
    f("writable", Bool, "any of create, write, delete"),
    f("full_write", Bool, "all of create, write and delete"),
    null("under", Text, "the path of the nearest declared fs fact enclosing this one (only a writable path inside a read-only declared directory has one: folding merged every other)"),
    f("under_readonly", Bool, "`under is not none`: this writable path lies inside a read-only declared directory"),
    f("index", Int, "position in the sorted fs facts (stable names)"),
];

const NET: &[FieldDef] = &[
    f(
        "host",
        Text,
        "`*`, `*.example.com`, `api.example.com`, `1.2.3.4`, `2606:4700::1111`",
    ),
    f(
        "host_kind",
        Choice(&["any", "wildcard", "name", "ipv4", "ipv6"]),
        "`any`, `wildcard`, `name`, `ipv4`, `ipv6`",
    ),
    null("domain", Text, "the name (without `*.` for wildcards)"),
    null("ip", Text, "the address for `ipv4`/`ipv6`"),
    null("port", Int, "none means any port"),
    f("any_port", Bool, "`port is none`"),
    f(
        "private",
        Bool,
        "an explicitly declared special-range address",
    ),
    f(
        "block_private",
        Bool,
        "`not private` (the reference's field)",
    ),
    f(
        "index",
        Int,
        "position in the sorted net facts (stable ACL names)",
    ),
];

const EXEC: &[FieldDef] = &[
    f("binary", Text, "program basename"),
    f("nested", Bool, "declared with `nestedSandbox=true`"),
    f("index", Int, "position in the sorted exec facts"),
];

const ENV: &[FieldDef] = &[
    f("name", Text, "variable name"),
    f(
        "action",
        Choice(&["read", "inject"]),
        "`inject` if any declaration injects, else `read`",
    ),
    f("index", Int, "position in the sorted env facts"),
];

const IPC: &[FieldDef] = &[
    f(
        "endpoint",
        Choice(&["x11", "dbus-session", "dbus-system", "unix"]),
        "`x11`, `dbus-session`, `dbus-system`, `unix`",
    ),
    null("path", Text, "the socket path for `unix`"),
    null("under", Text, "the path of the nearest declared fs fact whose bind already holds the endpoint's socket (`unix`: its path; `x11`: the directory `/tmp/.X11-unix`; `dbus-system`: `/run/dbus/system_bus_socket`), if any"),
    f("covered", Bool, "`under is not none`: a declared fs bind already makes the socket reachable, and a second bind of it would resolve a path the container may have written"),
    f(
        "index",
        Int,
        "position in the sorted ipc facts (stable names)",
    ),
];

const CLOCK: &[FieldDef] = &[
    f(
        "source",
        Choice(&["system", "tzdata"]),
        "`system` or `tzdata`",
    ),
    f("index", Int, "always 0 (one clock fact)"),
];

const ASSERT: &[FieldDef] = &[
    f("id", Text, "the assertion's id"),
    f("description", Text, "the assertion's text"),
    f("index", Int, "position in the sorted assert facts"),
];

/// The fields of a fact kind, in view order.
pub fn schema(kind: FactKind) -> &'static [FieldDef] {
    match kind {
        FactKind::Baseline => BASELINE,
        FactKind::Of(Kind::Fs) => FS,
        FactKind::Of(Kind::Net) => NET,
        FactKind::Of(Kind::Exec) => EXEC,
        FactKind::Of(Kind::Env) => ENV,
        FactKind::Of(Kind::Ipc) => IPC,
        FactKind::Of(Kind::Clock) => CLOCK,
        FactKind::Of(Kind::Assert) => ASSERT,
    }
}

impl FieldType {
    /// The type as docs/templates.md writes it.
    pub fn doc_name(self, nullable: bool) -> &'static str {
        match (self, nullable) {
            (Bool, _) => "bool",
            (Int, false) => "int",
            (Int, true) => "int or none",
            (Text | Choice(_), false) => "string",
            (Text | Choice(_), true) => "string or none",
            (List(_), _) => "list",
        }
    }

    /// Why a `when` value can never match a field of this type, if it cannot.
    pub fn refuses(self, value: &WhenValue) -> Option<String> {
        match (self, value) {
            (Bool, WhenValue::Bool(_)) | (Text, WhenValue::Str(_)) => None,
            (Int, WhenValue::Int(i)) if *i >= 0 => None,
            (Int, WhenValue::Int(i)) => Some(format!("{i} is negative; the field never is")),
            (Choice(values), WhenValue::Str(s)) if values.contains(&s.as_str()) => None,
            (Choice(values), WhenValue::Str(s)) => Some(format!(
                "\"{s}\" is none of its values ({})",
                values.join(", ")
            )),
            (List(_), _) => Some("a list field cannot be matched by `when`".to_owned()),
            (ty, v) => Some(format!(
                "{} is not of type {}",
                match v {
                    WhenValue::Bool(b) => b.to_string(),
                    WhenValue::Int(i) => i.to_string(),
                    WhenValue::Str(s) => format!("\"{s}\""),
                },
                ty.doc_name(false)
            )),
        }
    }
}

/// The field table of docs/templates.md, "The fact model".
pub fn doc_table() -> String {
    let mut out = String::from("| fact | field | type | meaning |\n|---|---|---|---|\n");
    let kinds = std::iter::once(FactKind::Baseline).chain(Kind::ALL.into_iter().map(FactKind::Of));
    for kind in kinds {
        for (i, field) in schema(kind).iter().enumerate() {
            out.push_str(&format!(
                "| {} | `{}` | {} | {} |\n",
                if i == 0 { kind.as_str() } else { "" },
                field.name,
                field.ty.doc_name(field.nullable),
                field.doc
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_unique_per_kind() {
        let kinds =
            std::iter::once(FactKind::Baseline).chain(Kind::ALL.into_iter().map(FactKind::Of));
        for kind in kinds {
            let names: Vec<&str> = schema(kind).iter().map(|f| f.name).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(names.len(), unique.len(), "{kind:?}: {names:?}");
            assert!(schema(kind).iter().all(|f| !f.doc.is_empty()), "{kind:?}");
        }
    }

    #[test]
    fn docs_show_the_schema() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/templates.md"),
        )
        .unwrap();
        assert!(
            docs.contains(&doc_table()),
            "docs/templates.md \"The fact model\" must hold exactly this table:\n{}",
            doc_table()
        );
    }

    #[test]
    fn when_values_that_can_never_match_are_named() {
        let port = NET.iter().find(|f| f.name == "port").unwrap();
        assert!(port.ty.refuses(&WhenValue::Str("443".into())).is_some());
        assert!(port.ty.refuses(&WhenValue::Int(443)).is_none());
        let kind = NET.iter().find(|f| f.name == "host_kind").unwrap();
        assert!(kind.ty.refuses(&WhenValue::Str("ip".into())).is_some());
        assert!(kind.ty.refuses(&WhenValue::Str("ipv4".into())).is_none());
        let private = NET.iter().find(|f| f.name == "private").unwrap();
        assert!(private.ty.refuses(&WhenValue::Str("true".into())).is_some());
        let actions = FS.iter().find(|f| f.name == "actions").unwrap();
        assert!(actions.ty.refuses(&WhenValue::Str("read".into())).is_some());
    }
}
