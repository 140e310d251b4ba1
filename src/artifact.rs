//! Stage 5: the JSON artifact, with the reference's fields in the reference's
//! key order (SPEC §9–§12); fields capgate adds come after them.

use serde::Serialize;

use crate::provenance::{CANONICALIZATION, GRAMMAR_VERSION};

/// `provenance` of every artifact.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub manifest_hash: String,
    pub grammar_version: &'static str,
    pub canonicalization: &'static str,
}

impl Provenance {
    pub fn new(manifest_hash: String) -> Provenance {
        Provenance {
            manifest_hash,
            grammar_version: GRAMMAR_VERSION,
            canonicalization: CANONICALIZATION,
        }
    }
}

/// One declared destination, as in the reference's `egress[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    pub host: String,
    pub port: Option<u16>,
    /// False only for an explicitly declared special-range address.
    pub block_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assertion {
    pub id: String,
    pub description: String,
}

/// What an `unenforceable` entry is about: a net rule in the reference's shape,
/// or another fact in its template view.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum UnenforcedRule {
    Net(Egress),
    Other(crate::lower::KindedView),
}

/// A capability string and the tool that declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilityRef {
    /// `null` for serverCapabilities.
    pub tool: Option<String>,
    pub capability: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unenforceable {
    pub rule: UnenforcedRule,
    pub reason: String,
    /// The capabilities behind the entry (capgate addition).
    pub capabilities: Vec<CapabilityRef>,
}

/// The slot whose elements form an argv artifact's `launcher` instead of
/// its `argv`.
pub const LAUNCHER_SLOT: &str = "launcher";

/// Artifact of an argv target (bwrap, docker).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgvArtifact {
    pub argv: Vec<String>,
    pub egress: Vec<Egress>,
    pub env_injections: Vec<String>,
    pub assertions: Vec<Assertion>,
    pub provenance: Provenance,
    pub notes: Vec<String>,
    pub unenforceable: Vec<Unenforceable>,
    pub target: String,
    /// The argv the host puts before the program that takes `argv` (capgate
    /// addition): present, possibly empty, exactly when the target's rules
    /// use the [`LAUNCHER_SLOT`] (bwrap); absent otherwise (docker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launcher: Option<Vec<String>>,
}

/// One file a config target writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigFile {
    pub filename: String,
    pub config: String,
}

/// Artifact of a config target (squid, nftables).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigArtifact {
    pub target: String,
    /// The first file's text and name (the only file of most targets).
    pub config: String,
    pub filename: String,
    /// Every file, the first included, when the target writes several
    /// (capgate addition); absent for a one-file target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<ConfigFile>>,
    pub unenforceable: Vec<Unenforceable>,
    pub provenance: Provenance,
    pub notes: Vec<String>,
    /// Assertions are host-enforced on every target; the reference dropped them here (SPEC §13.12).
    pub assertions: Vec<Assertion>,
    pub egress: Vec<Egress>,
}

/// Either artifact shape.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Artifact {
    Argv(ArgvArtifact),
    Config(ConfigArtifact),
}

impl Artifact {
    /// JSON text as the reference prints it: compact, or 2-space indented; with a final newline.
    pub fn to_json(&self, pretty: bool) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out, pretty)
            .expect("artifacts serialise into memory");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// [`Artifact::to_json`] written straight to `w`: a large artifact is
    /// megabytes of JSON that need not exist as one string.
    pub fn write_json(&self, mut w: impl std::io::Write, pretty: bool) -> std::io::Result<()> {
        if pretty {
            serde_json::to_writer_pretty(&mut w, self)?;
        } else {
            serde_json::to_writer(&mut w, self)?;
        }
        w.write_all(b"\n")
    }

    /// The output elements: the launcher's then the argv's elements (the
    /// order the host runs them in), or the config's lines, every file's.
    pub fn output(&self) -> Vec<&str> {
        match self {
            Artifact::Argv(a) => a
                .launcher
                .iter()
                .flatten()
                .chain(&a.argv)
                .map(String::as_str)
                .collect(),
            Artifact::Config(c) => match &c.files {
                Some(files) => files.iter().flat_map(|f| f.config.lines()).collect(),
                None => c.config.lines().collect(),
            },
        }
    }
}
