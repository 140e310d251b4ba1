//! A fact as rules and templates see it: its fields in the order of
//! [`crate::facts::schema`], matched by `when` without building JSON, and the
//! template value, the JSON of `explain` and the render context built from the
//! same view.

use std::borrow::Cow;
use std::collections::BTreeMap;

use minijinja::value::Value;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::FactRef;
use crate::capability::{ClockSource, Endpoint, FsActions, Glob, Host, Kind};
use crate::ir::Policy;
use crate::rules::{FactKind, WhenValue};

/// One field of a fact's view, borrowed from the policy where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field<'a> {
    Bool(bool),
    Uint(u64),
    Str(Cow<'a, str>),
    Null,
    /// An fs fact's actions, as the list of their names.
    Actions(FsActions),
}

/// The most fields any fact kind has (the baseline).
pub(super) const MAX_FIELDS: usize = 14;

/// A fact's view: its values in [`FactKind::fields`] order. `when` clauses
/// match against it without building a JSON value; [`fact_json`] and the
/// template value are both derived from it, so they cannot drift apart.
pub(super) struct View<'a> {
    pub(super) kind: FactKind,
    pub(super) values: [Field<'a>; MAX_FIELDS],
}

impl<'a> View<'a> {
    pub(super) fn new(kind: FactKind, fields: impl IntoIterator<Item = Field<'a>>) -> View<'a> {
        let mut values = [const { Field::Null }; MAX_FIELDS];
        let mut n = 0;
        for (slot, field) in values.iter_mut().zip(fields) {
            *slot = field;
            n += 1;
        }
        debug_assert_eq!(n, kind.fields().len(), "{kind:?}");
        View { kind, values }
    }

    pub(super) fn of(policy: &'a Policy, fact: FactRef) -> View<'a> {
        use Field::{Actions, Bool, Null, Str, Uint};
        let kind = fact_kind(fact);
        match fact {
            FactRef::Baseline => View::new(
                kind,
                [
                    Bool(!policy.nested.is_empty()),
                    Bool(policy.tmp_bind().is_some()),
                    Bool(policy.bind_of("/var/tmp").is_some()),
                    Bool(policy.bind_of("/run").is_some()),
                    Bool(!policy.net.is_empty()),
                    Uint(policy.net.len() as u64),
                    Bool(policy.net.iter().any(|n| n.private)),
                    Bool(policy.net.iter().any(|n| !n.private)),
                    Bool(policy.fs.iter().any(|f| f.actions.writable())),
                    Uint(policy.fs.len() as u64),
                    Bool(policy.fs.iter().any(|f| f.parent.is_some())),
                    Bool(policy.net.iter().any(|n| matches!(n.host, Host::Any))),
                    Bool(!policy.env.is_empty()),
                    Uint(policy.env.len() as u64),
                ],
            ),
            FactRef::Fact(k, i) => match k {
                Kind::Fs => {
                    let f = &policy.fs[i];
                    View::new(
                        kind,
                        [
                            Str(Cow::Borrowed(f.path.as_str())),
                            Str(Cow::Borrowed(match f.glob {
                                Glob::None => "none",
                                Glob::Children => "children",
                                Glob::Recursive => "recursive",
                            })),
                            Actions(f.actions),
                            Bool(f.actions.writable()),
                            // create, write and delete all declared: a read-write bind grants exactly this.
                            Bool(
                                f.actions.contains(
                                    FsActions::CREATE
                                        .union(FsActions::WRITE)
                                        .union(FsActions::DELETE),
                                ),
                            ),
                            f.parent
                                .map_or(Null, |p| Str(Cow::Borrowed(policy.fs[p].path.as_str()))),
                            Bool(f.parent.is_some()),
                            Uint(i as u64),
                        ],
                    )
                }
                Kind::Net => {
                    let f = &policy.net[i];
                    let host = match &f.host {
                        Host::Name(n) => Cow::Borrowed(n.as_str()),
                        h => Cow::Owned(h.to_string()),
                    };
                    View::new(
                        kind,
                        [
                            Str(host.clone()),
                            Str(Cow::Borrowed(f.host.kind_name())),
                            match &f.host {
                                Host::Name(n) | Host::Wildcard(n) => Str(Cow::Borrowed(n.as_str())),
                                _ => Null,
                            },
                            if f.host.is_ip() { Str(host) } else { Null },
                            f.port.map_or(Null, |p| Uint(p.get().into())),
                            Bool(f.port.is_none()),
                            Bool(f.private),
                            Bool(!f.private),
                            Uint(i as u64),
                        ],
                    )
                }
                Kind::Exec => {
                    let f = &policy.exec[i];
                    View::new(
                        kind,
                        [
                            Str(Cow::Borrowed(f.binary.as_str())),
                            Bool(f.nested),
                            Uint(i as u64),
                        ],
                    )
                }
                Kind::Env => {
                    let f = &policy.env[i];
                    View::new(
                        kind,
                        [
                            Str(Cow::Borrowed(f.name.as_str())),
                            Str(Cow::Borrowed(if f.inject { "inject" } else { "read" })),
                            Uint(i as u64),
                        ],
                    )
                }
                Kind::Ipc => {
                    let (endpoint, path, socket) = match &policy.ipc[i].endpoint {
                        Endpoint::X11 => ("x11", Null, Some("/tmp/.X11-unix".to_owned())),
                        Endpoint::DbusSession => ("dbus-session", Null, None),
                        Endpoint::DbusSystem => (
                            "dbus-system",
                            Null,
                            Some("/run/dbus/system_bus_socket".to_owned()),
                        ),
                        Endpoint::Unix(p) => {
                            ("unix", Str(Cow::Owned(p.to_string())), Some(p.to_string()))
                        }
                    };
                    // The nearest declared bind that already holds the socket.
                    let under = socket
                        .as_deref()
                        .and_then(|s| policy.enclosing_bind(s))
                        .map(|f| f.path.as_str());
                    View::new(
                        kind,
                        [
                            Str(Cow::Borrowed(endpoint)),
                            path,
                            under.map_or(Null, |u| Str(Cow::Borrowed(u))),
                            Bool(under.is_some()),
                            Uint(i as u64),
                        ],
                    )
                }
                Kind::Clock => View::new(
                    kind,
                    [
                        Str(Cow::Borrowed(policy.clock.as_ref().map_or(
                            "system",
                            |c| match c.source {
                                ClockSource::System => "system",
                                ClockSource::Tzdata => "tzdata",
                            },
                        ))),
                        Uint(0),
                    ],
                ),
                Kind::Assert => {
                    let f = &policy.assertions[i];
                    View::new(
                        kind,
                        [
                            Str(Cow::Borrowed(f.id.as_str())),
                            Str(Cow::Borrowed(f.description.as_str())),
                            Uint(i as u64),
                        ],
                    )
                }
            },
        }
    }

    /// Appends the fields, in [`FactKind::fields`] order, to a JSON object.
    pub(super) fn into_json(self, map: &mut serde_json::Map<String, serde_json::Value>) {
        let names = self.kind.fields();
        for (name, field) in names.iter().zip(self.values) {
            let value = match field {
                Field::Bool(b) => serde_json::Value::Bool(b),
                Field::Uint(n) => serde_json::Value::from(n),
                Field::Str(s) => serde_json::Value::String(s.into_owned()),
                Field::Null => serde_json::Value::Null,
                Field::Actions(actions) => serde_json::Value::Array(
                    actions
                        .names()
                        .into_iter()
                        .map(serde_json::Value::from)
                        .collect(),
                ),
            };
            map.insert((*name).to_owned(), value);
        }
    }

    /// The view as templates see it: minijinja's own map from field name to
    /// value, the same fields as [`fact_json`].
    pub(super) fn to_value(&self) -> Value {
        let names = self.kind.fields();
        // In name order, so that building the map sorts nothing.
        let map: BTreeMap<Value, Value> = self
            .kind
            .fields_by_name()
            .iter()
            .map(|&i| {
                let value = match &self.values[i] {
                    Field::Bool(b) => Value::from(*b),
                    Field::Uint(n) => Value::from(*n),
                    Field::Str(s) => Value::from(s.as_ref()),
                    Field::Null => Value::from(()),
                    Field::Actions(actions) => {
                        actions.names().into_iter().map(Value::from).collect()
                    }
                };
                (Value::from(names[i]), value)
            })
            .collect();
        Value::from(map)
    }

    /// Whether every `when` condition holds; `when` holds indices into the view.
    pub(super) fn matches(&self, when: &[(Option<usize>, &[WhenValue])]) -> bool {
        when.iter().all(|(field, values)| {
            let Some(actual) = field.map(|i| &self.values[i]) else {
                return false;
            };
            values.iter().any(|v| match (v, actual) {
                (WhenValue::Bool(b), Field::Bool(a)) => a == b,
                (WhenValue::Int(i), Field::Uint(n)) => i64::try_from(*n) == Ok(*i),
                (WhenValue::Str(s), Field::Str(a)) => a == s,
                _ => false,
            })
        })
    }
}

pub(super) fn fact_kind(fact: FactRef) -> FactKind {
    match fact {
        FactRef::Baseline => FactKind::Baseline,
        FactRef::Fact(k, _) => FactKind::Of(k),
    }
}

/// The template view of a fact, as a JSON value: what templates were given
/// before the typed view, kept as the reference its tests compare against.
pub fn fact_json(policy: &Policy, fact: FactRef) -> serde_json::Value {
    let view = View::of(policy, fact);
    let mut map = serde_json::Map::with_capacity(view.kind.fields().len());
    view.into_json(&mut map);
    serde_json::Value::Object(map)
}

/// The fact's view with its kind first (`baseline` for the sandbox), as
/// `unenforceable` entries and `explain` show it.
pub fn kinded_fact_json(policy: &Policy, fact: FactRef) -> serde_json::Value {
    serde_json::to_value(kinded_view(policy, fact)).expect("views serialise")
}

/// [`kinded_fact_json`] as an owned value that serialises straight to the
/// same JSON: a permissive compile has one per unenforced fact, often thousands.
pub fn kinded_view(policy: &Policy, fact: FactRef) -> KindedView {
    let view = View::of(policy, fact);
    let n = view.kind.fields().len();
    KindedView {
        kind: view.kind,
        values: view
            .values
            .into_iter()
            .take(n)
            .map(Field::into_owned)
            .collect(),
    }
}

/// See [`kinded_view`].
#[derive(Debug, Clone, PartialEq)]
pub struct KindedView {
    kind: FactKind,
    /// In [`FactKind::fields`] order.
    values: Vec<Field<'static>>,
}

impl Serialize for KindedView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names = self.kind.fields();
        let mut map = serializer.serialize_map(Some(1 + names.len()))?;
        let kind = match self.kind {
            FactKind::Baseline => "baseline",
            FactKind::Of(k) => k.as_str(),
        };
        map.serialize_entry("kind", kind)?;
        for (name, field) in names.iter().zip(&self.values) {
            map.serialize_entry(name, field)?;
        }
        map.end()
    }
}

impl Field<'_> {
    fn into_owned(self) -> Field<'static> {
        match self {
            Field::Bool(b) => Field::Bool(b),
            Field::Uint(n) => Field::Uint(n),
            Field::Str(s) => Field::Str(Cow::Owned(s.into_owned())),
            Field::Null => Field::Null,
            Field::Actions(a) => Field::Actions(a),
        }
    }
}

/// As [`View::into_json`] converts each field.
impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Bool(b) => serializer.serialize_bool(*b),
            Field::Uint(n) => serializer.serialize_u64(*n),
            Field::Str(s) => serializer.serialize_str(s),
            Field::Null => serializer.serialize_unit(),
            Field::Actions(actions) => serializer.collect_seq(actions.names()),
        }
    }
}
