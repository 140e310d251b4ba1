//! Stage 4b: fragments and the entry template → output lines, escaped per format.
//!
//! The template environment is locked down for policy output:
//! - every printed value goes through the formatter, which checks it with the
//!   escaper of what capgate is rendering (the target's format for fragments
//!   and the entry template, plain text for notes and reasons), never with
//!   one chosen by the template that prints it: an `{% include %}`d or
//!   imported file writes into its includer's output, whatever its name, and
//!   `{% autoescape false %}` changes nothing;
//! - a value is checked whether or not minijinja calls it safe: `|e`,
//!   `|escape`, macro, `caller()` and `{% set %}` block results are safe
//!   strings, and none of them may skip the check. The `safe` filter is
//!   removed too. Only values of the private [`Trusted`] type, which this
//!   module creates for fragments it has already rendered and for items it
//!   has already checked, are written as they are;
//! - undefined and none values are errors.
//!
//! Each rendered fragment is wrapped in invisible markers before the entry
//! template places it. After rendering, the markers tell which output line
//! came from which fragment, and whether a template dropped, duplicated or
//! altered one. Values can never contain the markers: every escaper refuses
//! control characters.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::assets::Assets;
use crate::diag::{Code, Diagnostic, Location};
use crate::escape::Escaper;
use crate::rules::{Format, Target};

const START: char = '\u{1}';
const SEP: char = '\u{2}';
const END: char = '\u{3}';
// The markers as the bytes `split` scans for.
const START_BYTE: u8 = START as u8;
const SEP_BYTE: u8 = SEP as u8;
const END_BYTE: u8 = END as u8;
/// How a marked fragment ends: the newline of its last line, then [`END`].
const FRAGMENT_END: &str = "\n\u{3}";
const _: () = assert!(FRAGMENT_END.as_bytes()[1] == END_BYTE);
const _: () = assert!(START_BYTE < b'\n' && SEP_BYTE < b'\n' && END_BYTE < b'\n');
const UNSAFE: &str = "unsafe value: ";
const UNSAFE_PATH: &str = "unsafe operator path: ";

/// Steps (minijinja fuel) one render may take when a target uses operator
/// rules or templates: `TEMPLATE_FUEL` beyond it.
pub const OPERATOR_FUEL: u64 = 10_000_000;

thread_local! {
    /// The escaper of the render running on this thread, set by
    /// [`render_with`] for the whole render: the root template's,
    /// so included and imported templates cannot pick a weaker one.
    static ESCAPER: Cell<Escaper> = const { Cell::new(Escaper::Output(Format::Argv)) };
}

/// Text this module produced and already checked: a marked fragment, or
/// items joined by `join_tokens`. The formatter writes it unchanged; any
/// filter or operator applied to it yields an ordinary (checked) string.
#[derive(Debug)]
struct Trusted(String);

impl Object for Trusted {
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The escaper of the render running on this thread.
fn escaper() -> Escaper {
    ESCAPER.with(Cell::get)
}

/// A target's template environment.
pub struct Renderer {
    env: Environment<'static>,
    /// Inline note/reason templates and the rules-file location of their rule.
    inline: Vec<(String, Location)>,
    assets: Assets,
    format: Format,
    /// Loader names of the entry templates, one per output file.
    entries: Vec<String>,
    /// Whether operator rules or templates are in use: then a YAML output is
    /// parsed after every render. Values cannot break YAML (the formatter
    /// quotes them), only template text can, and the built-in templates'
    /// output is parsed by the test suite for every fixture and fuzz input;
    /// parsing 30,000 capabilities' output was 40% of such a compile.
    operator_text: bool,
}

/// One output file's elements, each with the fragment it came from (`None`:
/// the entry template's own text).
pub type FileElements = Vec<(String, Option<usize>)>;

/// Whether `source` may call `function`: its name followed, after any
/// blanks, by `(` (a bare mention, as in a path `~/.claude/debug`, is not a call).
fn calls(source: &str, function: &str) -> bool {
    source
        .match_indices(function)
        .any(|(at, _)| source[at + function.len()..].trim_start().starts_with('('))
}

/// A template of a [`Renderer`], looked up once, when first used.
pub struct Template<'r> {
    name: String,
    /// The escaper every value it prints must pass ([`Renderer::escaper_of`]).
    escaper: Escaper,
    env: &'r Environment<'static>,
    /// `None` if the lookup failed; rendering then reports why.
    compiled: OnceCell<Option<minijinja::Template<'r, 'r>>>,
}

impl<'r> Template<'r> {
    fn new(env: &'r Environment<'static>, name: &str, escaper: Escaper) -> Template<'r> {
        Template {
            name: name.to_owned(),
            escaper,
            env,
            compiled: OnceCell::new(),
        }
    }

    fn compiled(&self) -> Option<&minijinja::Template<'r, 'r>> {
        self.compiled
            .get_or_init(|| self.env.get_template(&self.name).ok())
            .as_ref()
    }

    /// Whether rendering may look `variable` up in the context. Conservative:
    /// true unless the source never names it, never prints the whole context
    /// (`debug()`) and pulls in no other template that could (`include`,
    /// `import`, `from ... import`, `extends`). A template cannot name a
    /// variable any other way, so a false answer is certain.
    pub fn may_read(&self, variable: &str) -> bool {
        match self.compiled() {
            Some(t) => {
                let source = t.source();
                [variable, "include", "import", "extends"]
                    .iter()
                    .any(|word| source.contains(word))
                    || calls(source, "debug")
            }
            None => true,
        }
    }
}

/// Loader name of a rule's inline note template.
pub fn note_name(target: &Target, rule_id: &str) -> String {
    format!("{}#{rule_id}.note", target.source)
}

/// Loader name of a rule's inline unenforceable-reason template.
pub fn reason_name(target: &Target, rule_id: &str) -> String {
    format!("{}#{rule_id}.reason", target.source)
}

impl Renderer {
    /// Builds the environment. Operator rules or templates are compiled here,
    /// so their errors surface before any manifest is compiled; built-in ones
    /// when first used.
    pub fn new(assets: &Assets, target: &Target) -> Result<Renderer, Vec<Diagnostic>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.remove_filter("safe");
        // Fuel bounds what operator-written text can make the engine do (an
        // endless loop, a huge range). Built-in templates are capgate's own
        // and loop only over the manifest's facts, so they get none: a valid
        // manifest within the size limit never runs a built-in target out of
        // fuel, however many facts it has.
        let operator_text = !target.builtin || assets.templates_dir.is_some();
        env.set_fuel(operator_text.then_some(OPERATOR_FUEL));
        env.set_debug(false);
        env.set_formatter(format_value);
        env.add_filter("join_tokens", join_tokens);
        // Inline notes and reasons are served by the loader too, so that
        // nothing is compiled before it is used.
        let mut inline = Vec::new();
        let mut inline_text = HashMap::new();
        for rule in &target.rules {
            for (name, text) in [
                (note_name(target, &rule.id), &rule.note),
                (reason_name(target, &rule.id), &rule.reason),
            ] {
                if let Some(text) = text {
                    let at = Location {
                        file: target.source.clone(),
                        line: rule.line,
                        column: 1,
                    };
                    inline_text.insert(name.clone(), text.clone());
                    inline.push((name, at, rule));
                }
            }
        }
        let loader_assets = assets.clone();
        env.set_loader(move |name| {
            if let Some(text) = inline_text.get(name) {
                return Ok(Some(text.clone()));
            }
            loader_assets
                .template(name)
                .map(|t| t.map(|(text, _)| text))
                .map_err(|e| match crate::assets::UnsafePath::of(&e) {
                    Some(unsafe_path) => Error::new(
                        ErrorKind::TemplateNotFound,
                        format!("{UNSAFE_PATH}{unsafe_path}"),
                    ),
                    None => Error::new(
                        ErrorKind::TemplateNotFound,
                        format!("cannot read {name}: {e}"),
                    ),
                })
        });

        let renderer = Renderer {
            env,
            inline: inline
                .iter()
                .map(|(n, at, _)| (n.clone(), at.clone()))
                .collect(),
            assets: assets.clone(),
            format: target.format,
            entries: target.files.iter().map(|f| f.template.clone()).collect(),
            operator_text,
        };
        // Built-in templates are compiled and rendered against sample facts by
        // the test suite (samples::tests), so a built-in target compiles each
        // template when a manifest first uses it (a fixture fires about half
        // the rules). Operator text is compiled here, so that its errors
        // surface before any manifest is compiled.
        if !operator_text {
            return Ok(renderer);
        }
        let mut errors = Vec::new();
        for (name, at, rule) in &inline {
            if let Err(e) = renderer.env.get_template(name) {
                errors.push(
                    Diagnostic::new(
                        Code::TemplateInvalid,
                        format!(
                            "{} in the note or reason of rule `{}`: {}",
                            e.kind(),
                            rule.id,
                            e.detail().unwrap_or_default()
                        ),
                    )
                    .at(at.clone()),
                );
            }
        }
        let used = target
            .rules
            .iter()
            .filter_map(|r| r.template.as_ref().map(|t| (t, Some(r))))
            .chain(target.files.iter().map(|f| (&f.template, None)));
        for (name, rule) in used {
            if let Err(e) = renderer.env.get_template(name) {
                let d = match (e.kind(), rule) {
                    // A missing template is the rule's mistake: point at the rule.
                    (ErrorKind::TemplateNotFound, Some(rule))
                        if !e.detail().unwrap_or_default().starts_with(UNSAFE_PATH) =>
                    {
                        Diagnostic::new(
                        Code::TemplateInvalid,
                        format!(
                            "rule `{}` uses template `{}`, which exists neither in the operator's templates nor built in",
                            rule.id,
                            name.rsplit('/').next().unwrap_or(name)
                        ),
                    )
                        .at(Location {
                            file: target.source.clone(),
                            line: rule.line,
                            column: 1,
                        })
                    }
                    _ => renderer.error(&e),
                };
                if !errors.contains(&d) {
                    errors.push(d);
                }
            }
        }
        if errors.is_empty() {
            Ok(renderer)
        } else {
            Err(errors)
        }
    }

    /// Looks a template up once, for rendering it many times.
    pub fn template(&self, name: &str) -> Template<'_> {
        Template::new(&self.env, name, self.escaper_of(name))
    }

    /// Renders a fragment template; the result always ends with a newline, so
    /// fragments are whole lines however the entry template joins them.
    pub fn fragment(&self, template: &str, ctx: &Value) -> Result<String, Diagnostic> {
        self.fragment_of(&self.template(template), ctx)
    }

    /// [`Renderer::fragment`] of a template already looked up.
    pub fn fragment_of(&self, template: &Template<'_>, ctx: &Value) -> Result<String, Diagnostic> {
        let mut text = self.render_of(template, ctx)?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// Renders a note or reason template as one line of plain text.
    pub fn text(&self, name: &str, ctx: &Value) -> Result<String, Diagnostic> {
        self.text_of(&self.template(name), ctx)
    }

    /// [`Renderer::text`] of a template already looked up.
    pub fn text_of(&self, template: &Template<'_>, ctx: &Value) -> Result<String, Diagnostic> {
        let text = self.render_of(template, ctx)?;
        let trimmed = text.trim();
        Ok(if trimmed.len() == text.len() {
            text
        } else {
            trimmed.to_owned()
        })
    }

    fn render_of(&self, template: &Template<'_>, ctx: &Value) -> Result<String, Diagnostic> {
        match template.compiled() {
            Some(t) => render_with(template.escaper, || t.render(ctx)).map_err(|e| self.error(&e)),
            // Looking it up again yields the error to report.
            None => self.render(&template.name, ctx),
        }
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, Diagnostic> {
        render_with(self.escaper_of(name), || {
            self.env.get_template(name).and_then(|t| t.render(ctx))
        })
        .map_err(|e| self.error(&e))
    }

    /// The escaper every value printed by a render of the root template
    /// `name` must pass, wherever in the template tree it is printed: plain
    /// text for an inline note or reason, the target's format for everything
    /// else (fragments and the entry template, whose names the rules loader
    /// requires to end in `.<format>.j2`).
    fn escaper_of(&self, name: &str) -> Escaper {
        if self.inline.iter().any(|(n, _)| n == name) {
            Escaper::Text
        } else {
            Escaper::Output(self.format)
        }
    }

    /// Renders every entry template with the fragments placed by slot, and
    /// splits each result into output elements, each with the fragment it
    /// came from (`None`: the entry template's own text): one list per
    /// output file. `fragments` is how many fragments were marked; each must
    /// be placed exactly once across all files.
    pub fn main(&self, ctx: Value, fragments: usize) -> Result<Vec<FileElements>, Diagnostic> {
        let fragments_error = |entry: &str, problem: String| {
            let (file, _) = self.display(entry);
            Diagnostic::new(Code::TemplateFragments, problem).at(Location {
                file,
                line: 1,
                column: 1,
            })
        };
        let mut seen = vec![0u32; fragments];
        let mut files = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let out = self.render(entry, &ctx)?;
            let lines = split(&out, &mut seen).map_err(|p| fragments_error(entry, p))?;
            let lines: Vec<(String, Option<usize>)> = lines
                .into_iter()
                .filter_map(|(text, owner)| {
                    let text = match self.format {
                        Format::Argv => text.trim(),
                        _ => text.trim_end(),
                    };
                    // Trimmed at the end already: blank exactly when nothing is left after leading blanks.
                    (!blank(text)).then(|| (text.to_owned(), owner))
                })
                .collect();
            if self.format == Format::Yaml && self.operator_text {
                self.check_yaml(entry, &lines)?;
            }
            files.push(lines);
        }
        placed_once(&seen, self.entries.len()).map_err(|p| fragments_error(&self.entries[0], p))?;
        Ok(files)
    }

    /// A YAML target's output must parse: values cannot break it (they are
    /// quoted), but an operator's templates can (indentation, a stray `:`).
    fn check_yaml(&self, entry: &str, lines: &[(String, Option<usize>)]) -> Result<(), Diagnostic> {
        let text: String = lines.iter().flat_map(|(l, _)| [l.as_str(), "\n"]).collect();
        yaml_rust2::YamlLoader::load_from_str(&text)
            .map(|_| ())
            .map_err(|e| {
                let (file, _) = self.display(entry);
                Diagnostic::new(
                    Code::TemplateInvalid,
                    format!(
                        "the target's output is not valid YAML: {} (output line {}, column {})",
                        e.info(),
                        e.marker().line(),
                        e.marker().col() + 1
                    ),
                )
                .at(Location {
                    file,
                    line: 1,
                    column: 1,
                })
            })
    }

    fn display(&self, name: &str) -> (String, Option<String>) {
        match self.assets.template(name) {
            Ok(Some((text, display))) => (display, Some(text)),
            _ => (name.to_owned(), None),
        }
    }

    fn error(&self, e: &Error) -> Diagnostic {
        // An error inside an included or imported template comes wrapped in
        // "could not render include"; the innermost one says what and where.
        let mut e = e;
        while let Some(inner) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<Error>())
        {
            e = inner;
        }
        let detail = e.detail().unwrap_or_default();
        let code = if e.kind() == ErrorKind::OutOfFuel {
            Code::TemplateFuel
        } else if detail.starts_with(UNSAFE) {
            Code::TemplateUnsafeValue
        } else if detail.starts_with(UNSAFE_PATH) {
            Code::OperatorPathUnsafe
        } else {
            Code::TemplateInvalid
        };
        let name = e.name().unwrap_or(&self.entries[0]);
        let mut message = format!("{}", e.kind());
        if !detail.is_empty() {
            let _ = write!(
                message,
                ": {}",
                detail
                    .strip_prefix(UNSAFE)
                    .or_else(|| detail.strip_prefix(UNSAFE_PATH))
                    .unwrap_or(detail)
            );
        }
        let location = match self.inline.iter().find(|(n, _)| n == name) {
            // A note or reason template written inline in a rules file.
            Some((_, at)) => at.clone(),
            None => {
                let (file, text) = self.display(name);
                let (line, column) = match (e.range(), text) {
                    (Some(r), Some(text)) => {
                        crate::source::LineIndex::new(text.as_str()).line_col(r.start)
                    }
                    _ => (e.line().unwrap_or(1), 1),
                };
                Location { file, line, column }
            }
        };
        Diagnostic::new(code, message).at(location)
    }
}

/// Runs one render with `escaper` as the escaper of every printed value.
fn render_with<T>(escaper: Escaper, render: impl FnOnce() -> T) -> T {
    let previous = ESCAPER.with(|e| e.replace(escaper));
    let result = render();
    ESCAPER.with(|e| e.set(previous));
    result
}

/// Wraps a rendered fragment in the markers [`Renderer::main`] reads back.
pub fn mark(index: usize, text: &str) -> Value {
    // Pushed into a string of the final size: `format!` spent more on its
    // formatting machinery and regrowth than on the copy (a fragment can be
    // long, and a large compile marks tens of thousands).
    use std::fmt::Write as _;
    // The markers are one byte each; a usize has at most 20 digits.
    let mut marked = String::with_capacity(text.len() + 23);
    marked.push(START);
    write!(marked, "{index}").expect("writing to a String cannot fail");
    marked.push(SEP);
    marked.push_str(text);
    marked.push(END);
    Value::from_object(Trusted(marked))
}

/// Every printed value passes through here.
fn format_value(
    out: &mut minijinja::Output<'_>,
    _state: &mut minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    if let Some(trusted) = value.downcast_object_ref::<Trusted>() {
        return out
            .write_str(&trusted.0)
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "write failed"));
    }
    // Safe strings (`|e`, `|tojson`, macro and block results) are checked
    // like any other: minijinja's notion of safe is HTML's, not the format's.
    let number;
    let mut digits = Digits::default();
    let text = match value.kind() {
        ValueKind::Undefined | ValueKind::None => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "a template printed a none or undefined value",
            ))
        }
        // Most printed values are strings: check and write them in place.
        ValueKind::String => value.as_str().expect("a string value has a str"),
        // Integers (indices, ports) next: formatted on the stack, as `Display` would.
        ValueKind::Number if value.is_integer() => match i64::try_from(value.clone()) {
            Ok(n) => digits.format(n),
            Err(_) => {
                number = value.to_string();
                &number
            }
        },
        ValueKind::Bool | ValueKind::Number => {
            number = value.to_string();
            &number
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "cannot print a list or map; iterate over it",
            ))
        }
    };
    let escaper = escaper();
    escaper.check(text).map_err(|r| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{UNSAFE}{} {}", crate::diag::quote(text), r.0),
        )
    })?;
    let quoted;
    let text = if escaper.quotes() && value.kind() == ValueKind::String {
        quoted = double_quoted(text);
        &quoted
    } else {
        text
    };
    out.write_str(text)
        .map_err(|_| Error::new(ErrorKind::WriteFailure, "write failed"))
}

/// A YAML double-quoted scalar: JSON's string syntax, which YAML 1.2 reads
/// the same (its escapes are a subset of YAML's), so the value stays the
/// exact string whatever it spells (`ON`, `null`, `0x1F`, `a: b`, `#`).
fn double_quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a str serialises")
}

/// A decimal integer written into a stack buffer.
#[derive(Default)]
struct Digits {
    buf: [u8; 20],
}

impl Digits {
    fn format(&mut self, n: i64) -> &str {
        let mut rest = n.unsigned_abs();
        let mut start = self.buf.len();
        loop {
            start -= 1;
            self.buf[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            start -= 1;
            self.buf[start] = b'-';
        }
        std::str::from_utf8(&self.buf[start..]).expect("ASCII digits")
    }
}

/// `{{ list | join_tokens(", ") }}`: escapes every item for the template's
/// format, then joins them. The built-in `join` would produce one string whose
/// separators the escaper must refuse; this filter checks the items instead.
fn join_tokens(items: Value, sep: Option<String>) -> Result<Value, Error> {
    let escaper = escaper();
    let sep = sep.as_deref().unwrap_or(" ");
    // The separator is written unchecked between checked items, so it may
    // only be list punctuation: spaces and commas (and newlines, which end an
    // element, for argv and JSON).
    let newline_ok = matches!(escaper, Escaper::Output(Format::Argv | Format::Json));
    if !sep
        .chars()
        .all(|c| c == ' ' || c == ',' || (c == '\n' && newline_ok))
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{UNSAFE}separator {} of join_tokens may contain only spaces and commas",
                crate::diag::quote(sep)
            ),
        ));
    }
    let mut out = String::new();
    for (i, item) in items.try_iter()?.enumerate() {
        // A fragment (an item of `slots.<name>`) is placed unchanged, as the
        // entry template would place it: a list of fragments with separators,
        // e.g. JSON array elements without a trailing comma.
        if let Some(fragment) = item.downcast_object_ref::<Trusted>() {
            if i > 0 {
                // After the previous fragment's text, before the newline that
                // ends it: `"a",` rather than `"a"` and `, "b"` on the next line.
                if out.ends_with(FRAGMENT_END) {
                    out.truncate(out.len() - FRAGMENT_END.len());
                    out.push(END);
                    out.push_str(sep);
                    out.push('\n');
                } else {
                    out.push_str(sep);
                }
            }
            out.push_str(&fragment.0);
            continue;
        }
        if !matches!(item.kind(), ValueKind::String | ValueKind::Number) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "join_tokens joins strings and numbers",
            ));
        }
        let text = item.to_string();
        escaper.check(&text).map_err(|r| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{UNSAFE}{} {}", crate::diag::quote(&text), r.0),
            )
        })?;
        if i > 0 {
            out.push_str(sep);
        }
        if escaper.quotes() && item.kind() == ValueKind::String {
            out.push_str(&double_quoted(&text));
        } else {
            out.push_str(&text);
        }
    }
    Ok(Value::from_object(Trusted(out)))
}

/// An output line and the fragment it came from.
type Line<'a> = (Cow<'a, str>, Option<usize>);

/// Splits rendered output into lines, attributing each to the first fragment
/// that wrote something visible on it, counting in `seen` how often each
/// fragment appears and checking that each is intact ([`placed_once`] checks
/// the counts once every entry template is split).
///
/// A line is borrowed from `out` unless a marker sits between two of its
/// pieces: most lines are, which saves a copy of nearly all of the output.
fn split<'o>(out: &'o str, seen: &mut [u32]) -> Result<Vec<Line<'o>>, String> {
    const ALTERED: &str = "a fragment was altered by the entry template";
    let bytes = out.as_bytes();
    let fragments = seen.len();
    let mut lines = Vec::new();
    let mut line: Cow<'_, str> = Cow::Borrowed("");
    // Where the borrowed line ends in `out`, to know whether a piece continues it.
    let mut line_end = 0;
    let mut owner: Option<usize> = None;
    let mut open: Option<usize> = None;
    let mut pos = 0;
    // Every byte that ends a piece is ASCII, so slicing there keeps UTF-8 intact.
    // One comparison rules out nearly every byte: the markers and newline are all <= 0x0a.
    let special = |b: &u8| *b <= b'\n' && matches!(*b, b'\n' | START_BYTE | SEP_BYTE | END_BYTE);
    while pos < bytes.len() {
        let next = bytes[pos..]
            .iter()
            .position(special)
            .map_or(bytes.len(), |n| pos + n);
        if next > pos {
            let piece = &out[pos..next];
            if owner.is_none() && !blank(piece) {
                owner = open;
            }
            line = match line {
                Cow::Borrowed("") => Cow::Borrowed(piece),
                Cow::Borrowed(l) if line_end == pos => {
                    Cow::Borrowed(&out[line_end - l.len()..next])
                }
                l => {
                    let mut owned = l.into_owned();
                    owned.push_str(piece);
                    Cow::Owned(owned)
                }
            };
            line_end = next;
            pos = next;
            continue;
        }
        match bytes[pos] {
            START_BYTE => {
                if open.is_some() {
                    return Err("a fragment was placed inside another fragment".to_owned());
                }
                let digits_start = pos + 1;
                let digits_len = bytes[digits_start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .ok_or(ALTERED)?;
                let sep = digits_start + digits_len;
                if bytes[sep] != SEP_BYTE {
                    return Err(ALTERED.to_owned());
                }
                let i: usize = out[digits_start..sep]
                    .parse()
                    .ok()
                    .filter(|i| *i < fragments)
                    .ok_or(ALTERED)?;
                seen[i] += 1;
                open = Some(i);
                pos = sep + 1;
            }
            END_BYTE => {
                if open.take().is_none() {
                    return Err(ALTERED.to_owned());
                }
                pos += 1;
            }
            SEP_BYTE => return Err(ALTERED.to_owned()),
            _ => {
                // b'\n', the only other byte that ends a piece.
                lines.push((
                    std::mem::replace(&mut line, Cow::Borrowed("")),
                    owner.take(),
                ));
                pos += 1;
            }
        }
    }
    if open.is_some() {
        return Err("a fragment was cut short by the entry template".to_owned());
    }
    lines.push((line, owner));
    Ok(lines)
}

/// Whether `s` is empty or whitespace only (Unicode's, as `str::trim`).
/// Output lines are mostly indentation: the leading spaces are skipped a
/// byte at a time before the per-character check.
fn blank(s: &str) -> bool {
    let spaces = s.bytes().take_while(|b| *b == b' ').count();
    // A space is one byte, so `spaces` is a character boundary.
    s[spaces..].trim_start().is_empty()
}

/// After every entry template was split: each fragment placed exactly once.
fn placed_once(seen: &[u32], files: usize) -> Result<(), String> {
    let dropped = seen.iter().filter(|n| **n == 0).count();
    let duplicated = seen.iter().filter(|n| **n > 1).count();
    if dropped > 0 || duplicated > 0 {
        let templates = if files == 1 {
            "the entry template".to_owned()
        } else {
            format!("the {files} entry templates together")
        };
        return Err(format!(
            "{templates} dropped {dropped} and duplicated {duplicated} of the {} fragments its rules emitted",
            seen.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: usize, t: &str) -> String {
        mark(i, t)
            .downcast_object_ref::<Trusted>()
            .unwrap()
            .0
            .clone()
    }

    /// F18: built-in targets render without fuel (a valid manifest within
    /// the size limit cannot exhaust it); operator rules or templates get it.
    #[test]
    fn only_operator_text_runs_on_fuel() {
        for name in Assets::default().target_names().unwrap() {
            let builtin = Assets::default();
            let target = Target::load(&builtin, &name).unwrap();
            let r = Renderer::new(&builtin, &target).unwrap();
            assert_eq!(r.env.fuel(), None, "{name}");
            assert!(!r.operator_text, "{name}");
            let overlay = Assets {
                rules_dir: None,
                templates_dir: Some(std::env::temp_dir().join("capgate-no-such-dir")),
            };
            let r = Renderer::new(&overlay, &target).unwrap();
            assert_eq!(r.env.fuel(), Some(OPERATOR_FUEL), "{name}");
            assert!(r.operator_text, "{name}");
        }
    }

    #[test]
    fn integers_print_as_display_does() {
        for n in [0, 1, 9, 10, 443, 65535, -1, -10, i64::MAX, i64::MIN] {
            assert_eq!(Digits::default().format(n), Value::from(n).to_string());
        }
    }

    #[test]
    fn may_read_is_conservative() {
        let mut env = Environment::new();
        let cases = [
            ("{{ fact.path }}", false),
            ("plain text", false),
            ("{{ capabilities | join(', ') }}", true),
            ("{# capabilities #}", true),
            ("{% if capabilities is defined %}x{% endif %}", true),
            ("{{ debug() }}", true),
            ("{{ debug\n  ( ) }}", true),
            ("\"~/.claude/debug\" {{ fact.path }}", false),
            ("{% include 'other' %}", true),
            ("{% import 'other' as o %}", true),
            ("{% from 'other' import m %}", true),
            ("{% extends 'other' %}", true),
        ];
        for (i, (source, _)) in cases.iter().enumerate() {
            env.add_template_owned(i.to_string(), source.to_string())
                .unwrap();
        }
        for (i, (source, expected)) in cases.iter().enumerate() {
            let template = Template::new(&env, &i.to_string(), Escaper::Text);
            assert_eq!(template.may_read("capabilities"), *expected, "{source}");
        }
        let missing = Template::new(&env, "missing", Escaper::Text);
        assert!(missing.may_read("capabilities"));
    }

    #[test]
    fn split_attributes_lines() {
        let out = format!("head\n{}  {}tail\n", m(0, "a\nb\n"), m(1, "c\n"));
        let lines = split_one(&out, 2).unwrap();
        assert_eq!(
            lines,
            [
                ("head".into(), None),
                ("a".into(), Some(0)),
                ("b".into(), Some(0)),
                ("  c".into(), Some(1)),
                ("tail".into(), None),
                ("".into(), None),
            ]
        );
    }

    /// `split` as it was written first, character by character: the oracle
    /// for the faster one.
    fn split_by_char(out: &str, fragments: usize) -> Result<Vec<(String, Option<usize>)>, String> {
        let mut seen = vec![0u32; fragments];
        let mut lines = Vec::new();
        let mut line = String::new();
        let mut owner: Option<usize> = None;
        let mut open: Option<usize> = None;
        let mut chars = out.chars();
        while let Some(c) = chars.next() {
            match c {
                START => {
                    if open.is_some() {
                        return Err("a fragment was placed inside another fragment".to_owned());
                    }
                    let mut digits = String::new();
                    loop {
                        match chars.next() {
                            Some(SEP) => break,
                            Some(d) if d.is_ascii_digit() => digits.push(d),
                            _ => {
                                return Err(
                                    "a fragment was altered by the entry template".to_owned()
                                )
                            }
                        }
                    }
                    let i: usize = digits
                        .parse()
                        .ok()
                        .filter(|i| *i < fragments)
                        .ok_or("a fragment was altered by the entry template")?;
                    seen[i] += 1;
                    open = Some(i);
                }
                END => {
                    if open.take().is_none() {
                        return Err("a fragment was altered by the entry template".to_owned());
                    }
                }
                SEP => return Err("a fragment was altered by the entry template".to_owned()),
                '\n' => {
                    lines.push((std::mem::take(&mut line), owner.take()));
                }
                c => {
                    if owner.is_none() && !c.is_whitespace() {
                        owner = open;
                    }
                    line.push(c);
                }
            }
        }
        if open.is_some() {
            return Err("a fragment was cut short by the entry template".to_owned());
        }
        lines.push((line, owner));
        let dropped = seen.iter().filter(|n| **n == 0).count();
        let duplicated = seen.iter().filter(|n| **n > 1).count();
        if dropped > 0 || duplicated > 0 {
            return Err(format!(
                "the entry template dropped {dropped} and duplicated {duplicated} of the {fragments} fragments its rules emitted"
            ));
        }
        Ok(lines)
    }

    /// One entry template's split and the exactly-once check.
    fn split_one(out: &str, fragments: usize) -> Result<Vec<Line<'_>>, String> {
        let mut seen = vec![0u32; fragments];
        let lines = split(out, &mut seen)?;
        placed_once(&seen, 1)?;
        Ok(lines)
    }

    fn owned(lines: Vec<Line<'_>>) -> Vec<(String, Option<usize>)> {
        lines
            .into_iter()
            .map(|(l, o)| (l.into_owned(), o))
            .collect()
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn split_agrees_with_the_char_by_char_split(
            pieces in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(vec![
                        "\n", " ", "\t", "\u{3000}", "\u{a0}", "x", "é€", "--bind", "0", "1", "12",
                        "\u{1}", "\u{2}", "\u{3}",
                    ]).prop_map(str::to_owned),
                    (0usize..4, "[ a\n]{0,3}").prop_map(|(i, t): (usize, String)| m(i, &t)),
                ],
                0..24,
            ),
            fragments in 0usize..4,
        ) {
            let out: String = pieces.concat();
            prop_assert_eq!(split_one(&out, fragments).map(owned), split_by_char(&out, fragments));
        }

        #[test]
        fn blank_is_trim_is_empty(s in "[ \t\n\u{b}\u{c}\r\u{85}\u{a0}\u{3000}xé]{0,8}") {
            prop_assert_eq!(blank(&s), s.trim().is_empty());
        }

        #[test]
        fn split_of_valid_output_agrees_with_the_char_by_char_split(
            parts in proptest::collection::vec(("[ \n\u{3000}a-]{0,4}", "[ \n\u{a0}é-]{0,4}"), 0..12),
            tail in "[ \na]{0,3}",
        ) {
            // Every fragment exactly once, between arbitrary entry-template text.
            let mut out = String::new();
            for (i, (filler, text)) in parts.iter().enumerate() {
                out.push_str(filler);
                out.push_str(&m(i, text));
            }
            out.push_str(&tail);
            prop_assert_eq!(
                split_one(&out, parts.len()).map(owned),
                split_by_char(&out, parts.len())
            );
        }
    }

    #[test]
    fn split_of_well_formed_output_agrees_with_the_char_by_char_split() {
        let out = format!(
            "head\n{}  {}tail\n  x {}y\n{}\u{3000}{}\n",
            m(0, "a\nb\n"),
            m(1, "c\n"),
            m(2, "z"),
            m(3, "\u{a0}"),
            m(4, "é\n")
        );
        assert_eq!(
            owned(split_one(&out, 5).unwrap()),
            split_by_char(&out, 5).unwrap()
        );
    }

    #[test]
    fn split_detects_dropped_duplicated_and_altered_fragments() {
        assert!(split_one(&m(0, "a\n"), 2)
            .unwrap_err()
            .contains("dropped 1 and duplicated 0"));
        assert!(split_one(&format!("{}{}", m(0, "a\n"), m(0, "a\n")), 1)
            .unwrap_err()
            .contains("duplicated 1"));
        let cut = m(0, "abc\n");
        assert!(split_one(&cut[..cut.len() - 1], 1).is_err());
        assert!(split_one(&cut[1..], 1).is_err());
    }
}
