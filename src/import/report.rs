//! What one imported server became: capabilities with their source paths,
//! everything that was not carried over with the reason, and notes.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::tree::{index, join, Node, Value};
use crate::diag::Code;

/// One capability of the imported manifest and the input fields it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Granted {
    pub capability: String,
    /// Source paths (`servers.x.permissions.network.outbound.allow_host[2]`) and
    /// `--param NAME` for values given on the command line.
    pub sources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A capability the input implies but the import left out.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dropped {
    pub capability: String,
    pub sources: Vec<String>,
    /// The grammar's error code when capgate refuses the capability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub reason: String,
}

/// An input field that is not in the manifest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotCarried {
    pub source: String,
    pub reason: String,
}

/// The report of one server.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerReport {
    pub server: String,
    pub input: String,
    /// Source path of the server's entry in the input (empty for a whole file).
    pub entry: String,
    /// `imported` or `nothing-to-sandbox`.
    pub status: &'static str,
    /// `DIR/<file>` with --out; `null` for a server without a manifest.
    pub manifest_file: Option<String>,
    /// How the network section was read: `allow-list`, `none`, `all`
    /// (`insecure_allow_all`) or `unknown` (the publisher says nothing).
    pub network: &'static str,
    pub capabilities: Vec<Granted>,
    pub dropped: Vec<Dropped>,
    pub not_carried_over: Vec<NotCarried>,
    pub notes: Vec<String>,
    #[serde(skip)]
    consumed: BTreeSet<String>,
    /// Index of each granted capability in `capabilities`, and each source
    /// it has: sets, as a hostile file may repeat one capability many times.
    #[serde(skip)]
    granted: HashMap<String, usize>,
    #[serde(skip)]
    granted_sources: HashSet<(usize, String)>,
    /// `notes`, as a set.
    #[serde(skip)]
    note_set: HashSet<String>,
}

impl ServerReport {
    pub fn new(server: &str, input: &str, entry: &str) -> ServerReport {
        ServerReport {
            server: server.to_owned(),
            input: input.to_owned(),
            entry: entry.to_owned(),
            status: "imported",
            manifest_file: None,
            network: "unknown",
            capabilities: Vec::new(),
            dropped: Vec::new(),
            not_carried_over: Vec::new(),
            notes: Vec::new(),
            consumed: BTreeSet::new(),
            granted: HashMap::new(),
            granted_sources: HashSet::new(),
            note_set: HashSet::new(),
        }
    }

    /// Marks a source path as carried over (it, and everything below it).
    pub fn consume(&mut self, path: &str) {
        self.consumed.insert(path.to_owned());
    }

    /// Adds `capability` after checking it against the capability grammar;
    /// a capability capgate refuses is recorded as dropped with its code.
    /// Returns whether it was granted.
    pub fn grant(
        &mut self,
        capability: String,
        sources: Vec<String>,
        note: Option<String>,
    ) -> bool {
        for s in &sources {
            if !s.starts_with("--param ") {
                self.consumed.insert(s.clone());
            }
        }
        if let Some(d) = engine_socket(&capability) {
            self.dropped.push(Dropped {
                capability,
                sources,
                code: Some(Code::CapIpcSocket.as_str().to_owned()),
                reason: d,
            });
            return false;
        }
        if let Err(e) = crate::syntax::parse_capability(&capability) {
            self.dropped.push(Dropped {
                capability,
                sources,
                code: Some(e.code.as_str().to_owned()),
                reason: format!("capgate refuses this capability: {}", e.message),
            });
            return false;
        }
        if let Some(&i) = self.granted.get(&capability) {
            let g = &mut self.capabilities[i];
            for s in sources {
                if self.granted_sources.insert((i, s.clone())) {
                    g.sources.push(s);
                }
            }
            if g.note.is_none() {
                g.note = note;
            }
            return true;
        }
        let i = self.capabilities.len();
        self.granted.insert(capability.clone(), i);
        let sources: Vec<String> = sources
            .into_iter()
            .filter(|s| self.granted_sources.insert((i, s.clone())))
            .collect();
        self.capabilities.push(Granted {
            capability,
            sources,
            note,
        });
        true
    }

    pub fn drop_cap(
        &mut self,
        capability: String,
        sources: Vec<String>,
        reason: impl Into<String>,
    ) {
        for s in &sources {
            self.consumed.insert(s.clone());
        }
        self.dropped.push(Dropped {
            capability,
            sources,
            code: None,
            reason: reason.into(),
        });
    }

    pub fn not_carried(&mut self, source: &str, reason: impl Into<String>) {
        self.consumed.insert(source.to_owned());
        self.not_carried_over.push(NotCarried {
            source: source.to_owned(),
            reason: reason.into(),
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if self.note_set.insert(note.clone()) {
            self.notes.push(note);
        }
    }

    /// Lists every field below `node` (at `path`) that no capability and no
    /// explicit entry accounts for, with the reason `reason` gives for its key.
    pub fn sweep(&mut self, node: &Node, path: &str, reason: &dyn Fn(&str) -> String) {
        if self.consumed.contains(path) {
            return;
        }
        // Whether a consumed path lies below this one: the consumed paths that
        // start with `path.` or `path[` sort right after those prefixes.
        let below = ['.', '['].iter().any(|sep| {
            let prefix = format!("{path}{sep}");
            self.consumed
                .range(prefix.clone()..)
                .next()
                .is_some_and(|c| c.starts_with(&prefix))
        });
        let children: Vec<(String, &Node)> = match &node.value {
            Value::Object(m) if below || path.is_empty() => {
                m.iter().map(|(k, v)| (join(path, k), v)).collect()
            }
            Value::Array(a) if below => a
                .iter()
                .enumerate()
                .map(|(i, v)| (index(path, i), v))
                .collect(),
            _ => {
                if !matches!(node.value, Value::Null) {
                    let r = reason(path);
                    self.not_carried_over.push(NotCarried {
                        source: path.to_owned(),
                        reason: r,
                    });
                }
                return;
            }
        };
        for (p, child) in children {
            self.sweep(child, &p, reason);
        }
    }
}

/// A container-engine socket mounted as a file (Docker's
/// `/var/run/docker.sock:/var/run/docker.sock`): root on the host. The
/// grammar refuses it as `ipc:connect`, so the importer does not carry it
/// in as an fs grant either; the grammar's own check decides what an engine
/// socket is.
fn engine_socket(capability: &str) -> Option<String> {
    let path = capability.strip_prefix("fs:")?.split_once(':')?.1;
    if !path.ends_with(".sock") {
        return None;
    }
    let e = crate::syntax::parse_capability(&format!("ipc:connect:\"unix:{path}\"")).err()?;
    (e.code == Code::CapIpcSocket && e.message.contains("container-engine")).then(|| {
        format!(
            "capgate refuses this capability: {} (as an fs mount too)",
            e.message
        )
    })
}

/// The reason attached to a capability refused by the grammar, for tests.
pub fn dropped_code(r: &ServerReport, cap: &str) -> Option<Code> {
    let d = r.dropped.iter().find(|d| d.capability == cap)?;
    Code::ALL
        .iter()
        .copied()
        .find(|c| Some(c.as_str()) == d.code.as_deref())
}
