//! Diagnostics: stable error codes, locations and rendering.
//!
//! Every error capgate reports is a [`Diagnostic`] with a [`Code`] from the
//! registry below. Codes are part of the public interface (CI systems match on
//! them), so they never change meaning; `docs/errors.md` documents each one and
//! a test keeps that page and this registry in step.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

macro_rules! codes {
    ($($variant:ident => $name:literal, $summary:literal, $help:literal;)*) => {
        /// Stable error codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),* }

        impl Code {
            /// Every code, in registry order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable name printed in diagnostics.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name),* }
            }

            /// One line saying when the code fires.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary),* }
            }

            /// What would be accepted instead.
            pub fn help(self) -> &'static str {
                match self { $(Code::$variant => $help),* }
            }
        }
    };
}

codes! {
    // Input and manifest shape.
    InputUnreadable => "INPUT_UNREADABLE", "the manifest file or stdin could not be read",
        "check the path; use `-` to read the manifest from stdin";
    InputJson => "INPUT_JSON", "the manifest is not valid JSON (RFC 8259, UTF-8 without BOM)",
        "fix the JSON syntax at the given position";
    OutputUnwritable => "OUTPUT_UNWRITABLE", "the artifact could not be written to stdout",
        "check where stdout goes: a full disk, a closed pipe or a file that cannot be written; treat what was written as incomplete";
    ManifestShape => "MANIFEST_SHAPE", "a manifest field is missing or has the wrong type",
        "a manifest is {\"name\": string, \"version\": string, \"serverCapabilities\"?: [string], \"tools\": [{\"name\": string, \"capabilities\": [string]}]}";
    ManifestDuplicateKey => "MANIFEST_DUPLICATE_KEY", "a JSON object has the same key twice",
        "JSON parsers disagree on which duplicate wins, so capgate refuses them: keep one";
    ManifestTooLarge => "MANIFEST_TOO_LARGE", "the manifest exceeds a documented size limit",
        "see docs/security.md for the limits; split the server or shorten the value";
    GrammarVersionMismatch => "GRAMMAR_VERSION_MISMATCH", "the manifest declares a grammar version other than \"0.0\"",
        "set \"grammar\": \"0.0\" or remove the key";
    // Capability grammar: codes shared with the reference tool.
    CapMalformed => "CAP_MALFORMED", "a capability has fewer than two colon-separated parts",
        "write <kind>:<scope>, e.g. fs:read:/workspace/** or clock:system";
    CapUnknownKind => "CAP_UNKNOWN_KIND", "the capability kind is not one of fs, net, exec, env, ipc, clock, assert",
        "kinds are lower case: fs, net, exec, env, ipc, clock, assert";
    CapFsShape => "CAP_FS_SHAPE", "an fs capability does not have exactly three parts",
        "write fs:<actions>:<absolute path>, e.g. fs:read,write:/workspace/**";
    CapFsRelative => "CAP_FS_RELATIVE", "an fs path does not start with `/`",
        "paths are absolute, e.g. /workspace/**";
    CapNetShape => "CAP_NET_SHAPE", "a net capability does not have three or four parts",
        "write net:connect:<host>[:<port>]; quote IPv6 hosts: net:connect:\"2606:4700::1111\":443";
    CapNetPort => "CAP_NET_PORT", "a port is not a plain decimal number from 1 to 65535",
        "write the port as plain decimal digits without sign or leading zero, e.g. 443";
    CapExecShape => "CAP_EXEC_SHAPE", "an exec capability does not have exactly three parts",
        "write exec:spawn:<program name>, e.g. exec:spawn:git";
    CapExecPath => "CAP_EXEC_PATH", "an exec binary contains `/`",
        "name the program by its basename, e.g. exec:spawn:git";
    CapEnvShape => "CAP_ENV_SHAPE", "an env capability does not have exactly three parts",
        "write env:<read|inject>:<NAME>, e.g. env:inject:GITHUB_TOKEN";
    CapEnvName => "CAP_ENV_NAME", "an env name is not UPPER_SNAKE (^[A-Z_][A-Z0-9_]*$)",
        "use upper-case letters, digits and `_`, not starting with a digit";
    CapIpcShape => "CAP_IPC_SHAPE", "an ipc capability does not have exactly three parts",
        "write ipc:connect:<endpoint>: x11, dbus:session, dbus:system or unix:/path/to.sock";
    CapClockShape => "CAP_CLOCK_SHAPE", "a clock capability does not have exactly two parts",
        "write clock:system or clock:tzdata";
    CapClockSource => "CAP_CLOCK_SOURCE", "the clock source is not system or tzdata",
        "write clock:system or clock:tzdata";
    CapAssertShape => "CAP_ASSERT_SHAPE", "an assertion has an empty or invalid id",
        "write assert:<id>[:<description>]; ids use letters, digits, `.`, `_` and `-`";
    CapActionsEmpty => "CAP_ACTIONS_EMPTY", "the actions part of a capability is empty",
        "list at least one action, e.g. fs:read:/workspace/**";
    CapActionUnknown => "CAP_ACTION_UNKNOWN", "an action is not allowed for its kind",
        "fs: read, write, create, delete; net: connect; exec: spawn; env: read, inject; ipc: connect";
    // Capability grammar: capgate's stricter rules.
    CapSyntax => "CAP_SYNTAX", "quotes or refinements are misplaced",
        "quotes must enclose a whole segment (net:connect:\"::1\":443) and cannot contain `?`";
    CapTooLong => "CAP_TOO_LONG", "a capability string is longer than 4096 bytes",
        "capabilities are short declarations; see docs/security.md for the limits";
    CapChar => "CAP_CHAR", "a capability contains a control, invisible or formatting character",
        "remove control characters, bidi overrides and zero-width characters";
    CapFsPath => "CAP_FS_PATH", "an fs path is not normalised or contains a character outside the allowlist",
        "write a normalised absolute path of letters, digits and . _ - + @ ~ (no `.`/`..` segments, `//` or trailing `/`)";
    CapFsGlob => "CAP_FS_GLOB", "a glob appears somewhere other than the whole last segment",
        "globs are allowed only as the whole last segment: /dir/** (recursive) or /dir/* (children)";
    CapFsReserved => "CAP_FS_RESERVED", "an fs path (after host aliases such as /var/run or /run/shm) is the host root, lies under /proc, /sys or /dev, or is, holds or lies in a container-engine socket location, binds a well-known socket directory (/tmp/.X11-unix, /run/dbus), or is writable and is or holds a path the targets bind read-only beside the declared ones (/usr, /etc/ssl, /etc/localtime, ...) or is, holds or lies in a directory capgate run takes its tools from (/usr/local/bin, /usr/local/sbin)",
        "declare the directories the server needs; the sandbox provides its own /proc and a minimal /dev";
    CapNetHost => "CAP_NET_HOST", "a host is not a DNS name, `*.name`, an IPv4/IPv6 literal or `*`",
        "write a DNS name (api.github.com), *.example.com, 1.2.3.4, a quoted IPv6 literal or *";
    CapNetHostSpecial => "CAP_NET_HOST_SPECIAL", "a host is not a usable unicast destination",
        "unspecified, multicast, broadcast and IPv4-mapped/translated IPv6 addresses cannot be granted; write the plain IPv4 address";
    CapExecName => "CAP_EXEC_NAME", "an exec binary is empty or contains characters outside the allowlist",
        "program names use letters, digits and . _ - +, starting with a letter, digit or `_`";
    CapEnvDangerous => "CAP_ENV_DANGEROUS", "an env name loads code, names a command, points at config that runs code, weakens TLS or redirects traffic or files",
        "a host value for such a variable takes over the sandboxed program (docs/security.md lists every refused name by category); set it in the image instead";
    CapIpcEndpoint => "CAP_IPC_ENDPOINT", "an ipc endpoint is not x11, dbus:session, dbus:system or unix:<socket path>",
        "write ipc:connect:x11, ipc:connect:\"dbus:session\", ipc:connect:\"dbus:system\" or ipc:connect:\"unix:/run/app.sock\"";
    CapIpcSocket => "CAP_IPC_SOCKET", "a unix endpoint (after host aliases such as /var/run) names a directory-sized path, a path under /proc, /sys or /dev, or a container-engine socket or a directory holding one",
        "name one socket file below a directory (unix:/run/app/app.sock); engine sockets (docker, podman, containerd) grant root on the host";
    CapRefinement => "CAP_REFINEMENT", "a refinement is unknown, repeated, on the wrong kind or has a bad value",
        "the only refinement is nestedSandbox=true|false, on exec capabilities, at most once";
    // Command line.
    Usage => "USAGE", "the command line is invalid: an unknown flag or command, a missing value or an invalid choice",
        "run `capgate <command> --help` for every flag with an example";
    // Import (`capgate import`).
    ImportYaml => "IMPORT_YAML", "a YAML input is not valid YAML or uses a feature the importer refuses (aliases, merge keys, tags, several documents, duplicate keys)",
        "fix the YAML at the given position; write aliased values out";
    ImportShape => "IMPORT_SHAPE", "an input field an importer reads is missing or has the wrong type or form",
        "the message names the field's source path; see docs/import.md for the fields each format needs";
    ImportTemplate => "IMPORT_TEMPLATE", "a Docker volume template is malformed or uses an unsupported filter",
        "templates are {{server.param|filter...}} with the filters volume, volume-target, into, first, last, or:DEFAULT";
    ImportParamMissing => "IMPORT_PARAM_MISSING", "a volume template needs a parameter that no --param gives",
        "pass --param NAME=/host/path (the message names the parameter); repeat it for a list";
    ImportParamInvalid => "IMPORT_PARAM_INVALID", "a --param is malformed, unused, or its value cannot be used where the template puts it",
        "values are absolute, normalised host paths without `:` or `,`; a parameter used inside one volume takes a single value";
    ImportServerUnknown => "IMPORT_SERVER_UNKNOWN", "--server names no server of the input",
        "use the registry key (ToolHive) or the `name` field (server.yaml, server.json)";
    ImportServerName => "IMPORT_SERVER_NAME", "a server name cannot be a file name, or two servers share a name or a file",
        "with --out, names are letters, digits, `.`, `_`, `-` (and `/` in server.json namespaces), starting with a letter or digit";
    ImportNothingToSandbox => "IMPORT_NOTHING_TO_SANDBOX", "the one server asked for has no local process to sandbox (a remote or poci entry)",
        "the report on stderr says why; a remote server runs at the publisher's URL";
    // Targets.
    AdapterUnsupported => "ADAPTER_UNSUPPORTED", "the target has no rule for a capability in the manifest",
        "choose a target that can lower it, or pass --permissive to list it under unenforceable instead";
    TargetUnknown => "TARGET_UNKNOWN", "no target of that name exists",
        "run `capgate targets` to list the built-in and operator targets";
    OptionInvalid => "OPTION_INVALID", "a --set option is unknown or its value is invalid",
        "run `capgate targets` to see each target's options, their types and defaults";
    OptionInWritable => "OPTION_IN_WRITABLE", "a host path option that the output uses (types `path`, `read_path`, `read_path_list`) lies in a path the manifest declares writable",
        "set the option to a path outside the writable declarations, or declare writable only the directories the server writes";
    RulesInvalid => "RULES_INVALID", "a rules file is not valid TOML or does not match the rules schema",
        "see docs/templates.md for the rules file format";
    TemplateInvalid => "TEMPLATE_INVALID", "a template is missing, does not parse, or fails while rendering",
        "see docs/templates.md; undefined variables are errors";
    TemplateUnsafeValue => "TEMPLATE_UNSAFE_VALUE", "a value cannot be written safely in the target's output format",
        "the value contains characters the output format would interpret; it is refused rather than repaired";
    TemplateFuel => "TEMPLATE_FUEL", "a render of a target with operator rules or templates took more than 10,000,000 template engine steps",
        "operator templates and inline notes are limited to 10,000,000 steps per render (docs/templates.md): loop over less, or leave the template to the built-in one, which has no limit";
    OperatorPathUnsafe => "OPERATOR_PATH_UNSAFE", "an operator rules, templates or eject directory holds a symlink that leads outside it (or, for init --eject, any symlink) or something that is not a regular file or directory",
        "replace the symlink with a copy of the file inside the directory, or point --rules/--templates/--eject at the real directory";
    TemplateFragments => "TEMPLATE_FRAGMENTS", "a main template dropped, duplicated or altered a fragment its rules emitted",
        "render every fragment exactly once with {{ f }} inside `for f in slots.<name>`";
    // capgate run: failures before the server starts (exit 125).
    RunUser => "RUN_USER", "`capgate run` would start the sandbox as host root, or --user is not a UID[:GID] the run can take",
        "give --user a non-zero numeric UID[:GID] (e.g. the owner of the data directories); as a non-root user, run without --user";
    RunNetwork => "RUN_NETWORK", "the manifest declares network that this run cannot provide (not root, or --target docker), or setting up the network failed",
        "network needs capgate run started as root with --target bwrap (docs/run.md \"Network\"); --permissive runs the server with no network at all; when the setup failed, the message names the tool and its error";
    RunDownloader => "RUN_DOWNLOADER", "the command is a launcher that downloads the server at start (npx, uvx, npm exec, ...)",
        "install the server first and run the installed entry point (docs/run.md)";
    RunCommand => "RUN_COMMAND", "the command to run cannot be found or read",
        "give an absolute path or a program on PATH; the run resolves it before the sandbox starts";
    RunRuntimeGrant => "RUN_RUNTIME_GRANT", "the command's runtime would need a directory that exposes far more than a runtime (/, a top-level directory, a home directory)",
        "install the server in its own directory (e.g. /opt/NAME), or declare what it needs in the manifest";
    RunBindSource => "RUN_BIND_SOURCE", "a path the manifest grants does not exist on the host, so the sandbox cannot bind it",
        "create the path (owned by the sandbox user when it is written), or remove the grant from the manifest";
    RunStart => "RUN_START", "the sandbox could not be started: bwrap, the launcher or the container engine is missing or failed to execute",
        "install bubblewrap (and util-linux for setpriv), or podman/docker for --target docker; docs/run.md lists what each target needs";
}

/// Process exit code classes (same as the reference tool).
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 2;
    pub const INPUT: u8 = 3;
    pub const COMPILE: u8 = 4;
    /// `capgate run` failed before the server started.
    pub const RUN: u8 = 125;
}

impl Code {
    /// The exit code a failure with this code ends in.
    pub fn exit_code(self) -> u8 {
        match self {
            Code::InputUnreadable | Code::InputJson | Code::OutputUnwritable => exit::INPUT,
            Code::ImportYaml | Code::ImportShape | Code::ImportTemplate => exit::INPUT,
            Code::Usage
            | Code::TargetUnknown
            | Code::OptionInvalid
            | Code::ImportParamMissing
            | Code::ImportParamInvalid
            | Code::ImportServerUnknown => exit::USAGE,
            Code::RunUser
            | Code::RunNetwork
            | Code::RunDownloader
            | Code::RunCommand
            | Code::RunRuntimeGrant
            | Code::RunBindSource
            | Code::RunStart => exit::RUN,
            _ => exit::COMPILE,
        }
    }
}

/// A position in the manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// The capability a diagnostic is about, with the offending byte range of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapContext {
    /// `None` for server-level capabilities. The tool's name in display
    /// form ([`tool_label`]): escaped, and cut when long, so thousands of
    /// diagnostics about one tool do not each carry a copy of a huge name.
    pub tool: Option<String>,
    /// Index within the tool's (or the server's) capability list.
    pub index: usize,
    pub capability: String,
    #[serde(skip)]
    pub span: Range<usize>,
}

/// One reported problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    pub location: Option<Location>,
    pub cap: Option<CapContext>,
    /// Overrides the code's generic help when the problem allows a sharper hint.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            location: None,
            cap: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn at(mut self, location: Location) -> Diagnostic {
        self.location = Some(location);
        self
    }

    pub fn help_text(&self) -> &str {
        self.help.as_deref().unwrap_or(self.code.help())
    }

    /// Human-readable rendering; the first line is `capgate: <CODE>: <message>`.
    pub fn render(&self) -> String {
        let mut out = format!("capgate: {}: {}\n", self.code.as_str(), self.message);
        if let Some(loc) = &self.location {
            let _ = write!(out, "  --> {}:{}:{}", loc.file, loc.line, loc.column);
            if let Some(cap) = &self.cap {
                match &cap.tool {
                    Some(t) => {
                        let _ = write!(out, ": tool \"{t}\", capability {}", cap.index);
                    }
                    None => {
                        let _ = write!(out, ": serverCapabilities[{}]", cap.index);
                    }
                }
            }
            out.push('\n');
        }
        if let Some(cap) = self
            .cap
            .as_ref()
            .filter(|c| c.capability.len() <= MAX_SHOWN)
        {
            let shown = printable(&cap.capability);
            let start = printable(&cap.capability[..cap.span.start.min(cap.capability.len())])
                .chars()
                .count();
            let width = printable(cap.capability.get(cap.span.clone()).unwrap_or_default())
                .chars()
                .count()
                .max(1);
            let _ = writeln!(out, "   |");
            let _ = writeln!(out, "   | {shown}");
            let _ = writeln!(out, "   | {}{}", " ".repeat(start), "^".repeat(width));
        } else if let Some(cap) = &self.cap {
            // Too long to quote: show the start, and point at the span when it
            // starts there, else at the ellipsis.
            let shown = shown(&cap.capability);
            let head = shown.find("... (").unwrap_or(0);
            let start = if cap.span.start < head {
                cap.span.start
            } else {
                head
            };
            let _ = writeln!(out, "   |");
            let _ = writeln!(out, "   | {}", printable(&shown));
            let _ = writeln!(out, "   | {}^", " ".repeat(start));
        }
        let _ = writeln!(out, "   = help: {}", self.help_text());
        out.push('\n');
        out
    }

    /// Machine-readable form for `--error-format json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
            "location": self.location,
            "tool": self.cap.as_ref().and_then(|c| c.tool.clone()),
            "capabilityIndex": self.cap.as_ref().map(|c| c.index),
            "capability": self.cap.as_ref().map(|c| shown(&c.capability)),
            "span": self.cap.as_ref().map(|c| [c.span.start, c.span.end]),
            "help": self.help_text(),
        })
    }
}

/// Longest capability a diagnostic quotes in full; a longer one (only ever a
/// CAP_TOO_LONG) is shown by its start, so a hostile 10 MB string does not
/// become 10 MB of stderr.
pub const MAX_SHOWN: usize = 512;

/// The capability text as a diagnostic shows it.
fn shown(capability: &str) -> String {
    cut(capability, MAX_SHOWN, 80, str::to_owned)
}

/// `text` through `show` when it is at most `max` bytes; otherwise its first
/// `keep` bytes (back to a char boundary) through `show`, plus its length.
fn cut(text: &str, max: usize, keep: usize, show: impl Fn(&str) -> String) -> String {
    if text.len() <= max {
        return show(text);
    }
    let mut end = keep;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", show(&text[..end]), text.len())
}

/// Longest tool name shown in full in output (notes, `unenforceable[]`,
/// `explain`, JSON diagnostics). A longer one is shown by its start and its
/// length: output that names a tool once per capability then grows with the
/// number of capabilities, not with the product of that and the name's length.
pub const MAX_TOOL_SHOWN: usize = 128;

/// A tool name as every output shows it (text and JSON alike): control,
/// bidi and zero-width characters as `\u{..}` (see [`printable`]), and a
/// name longer than [`MAX_TOOL_SHOWN`] bytes cut to its first 64 bytes plus
/// `... (N bytes)`.
pub fn tool_label(name: &str) -> String {
    cut(name, MAX_TOOL_SHOWN, 64, printable)
}

/// Quotes a name for a message, escaping what would make the message ambiguous.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", printable(s))
}

/// Makes control and invisible characters visible as `\u{..}` so a diagnostic
/// can never be spoofed by the text it quotes.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_invisible(c) || c == '\\' {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters and the invisible formatting characters used in
/// "trojan source" tricks: bidi controls, zero-width characters, BOM.
pub fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || matches!(c,
            '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}' | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_documented() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            assert!(
                seen.insert(code.as_str()),
                "duplicate code {}",
                code.as_str()
            );
            assert!(!code.summary().is_empty() && !code.help().is_empty());
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }

    #[test]
    fn printable_escapes_bidi_and_controls() {
        assert_eq!(printable("a\u{202e}b\nc"), "a\\u{202e}b\\u{000a}c");
    }
}
