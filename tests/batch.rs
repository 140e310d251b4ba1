//! Batch compilation (library level): many manifests, one compiler, all cores.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use capgate::assets::Assets;
use capgate::batch::{compile_batch, compile_batch_jobs, expand_inputs, BatchReport, Failure};
use capgate::compile::{Compiler, Settings};
use capgate::diag::{exit, Code};

/// A fresh directory below the system temp dir, removed on drop (also on panic).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "capgate-batch-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn compiler(target: &str) -> Compiler {
    Compiler::new(&Assets::default(), target).expect("built-in target")
}

fn strict() -> Settings {
    Settings::default()
}

/// What `capgate compile <file>` prints for one manifest.
fn single(compiler: &Compiler, path: &Path, settings: &Settings, pretty: bool) -> String {
    let bytes = fs::read(path).unwrap();
    compiler
        .compile(&path.display().to_string(), &bytes, settings)
        .expect("compiles")
        .artifact
        .to_json(pretty)
}

fn copy(from: &Path, to: &Path) -> PathBuf {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap();
    to.to_owned()
}

#[test]
fn bad_manifests_do_not_stop_the_good_ones() {
    let tmp = TempDir::new("mixed");
    let inputs = vec![
        fixture("manifests/github.json"),
        fixture("errors/cap-env-dangerous.json"),
        fixture("manifests/puppeteer.json"),
        tmp.path().join("missing.json"),
        fixture("errors/invalid-json.json"),
        fixture("manifests/filesystem.json"),
    ];
    let out = tmp.path().join("out");
    let c = compiler("bwrap");
    let calls = RefCell::new(Vec::new());
    let progress = |done: usize, total: usize| calls.borrow_mut().push((done, total));
    let report = compile_batch(&c, &inputs, &out, &strict(), true, Some(&progress));

    // One entry per input, in input order.
    let listed: Vec<&Path> = report.items.iter().map(|i| i.input.as_path()).collect();
    assert_eq!(
        listed,
        inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>()
    );
    assert_eq!(report.succeeded(), 3);
    assert!(report.any_failed());
    assert_eq!(report.exit_code(), exit::COMPILE);

    for (i, name) in [(0, "github"), (2, "puppeteer"), (5, "filesystem")] {
        let written = report.items[i].result.as_ref().expect("compiled");
        assert_eq!(written, &out.join(format!("{name}.bwrap.json")));
        assert_eq!(
            fs::read_to_string(written).unwrap(),
            single(&c, &inputs[i], &strict(), true)
        );
    }
    let code = |i: usize| match &report.items[i].result {
        Err(Failure::Compile(d)) => d[0].code,
        other => panic!("input {i}: {other:?}"),
    };
    assert_eq!(code(1), Code::CapEnvDangerous);
    assert_eq!(code(3), Code::InputUnreadable);
    assert_eq!(code(4), Code::InputJson);
    for i in [1, 3, 4] {
        let stem = inputs[i]
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!out.join(format!("{stem}.bwrap.json")).exists());
    }
    // Located diagnostics, rendered as the single compile renders them.
    let rendered = report.items[1].result.as_ref().unwrap_err().render();
    assert!(
        rendered.starts_with("capgate: CAP_ENV_DANGEROUS: "),
        "{rendered}"
    );
    assert!(rendered.contains("cap-env-dangerous.json:"), "{rendered}");
    assert_eq!(
        report.items[4].result.as_ref().unwrap_err().exit_code(),
        exit::INPUT
    );

    let summary = report.summary();
    assert!(
        summary.starts_with("capgate: batch: 3 of 6 manifest(s) compiled, 3 failed\n"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 4, "{summary}");
    assert_eq!(report.failures().count(), 3);

    // Progress: once per input, counting up to the total.
    let calls = calls.into_inner();
    assert_eq!(calls, (1..=6).map(|d| (d, 6)).collect::<Vec<_>>());
    // Nothing but the artifacts is left in the output directory.
    assert_eq!(fs::read_dir(&out).unwrap().count(), 3);
}

#[test]
fn every_good_input_compiles_and_threads_do_not_change_results() {
    let dir = fixture("manifests");
    let inputs = expand_inputs(std::slice::from_ref(&dir)).unwrap();
    assert!(inputs.len() >= 10);
    let c = compiler("squid");
    let permissive = Settings {
        permissive: true,
        set: vec![("listen".into(), "127.0.0.1:3129".into())],
    };
    let outputs = |jobs: usize| -> (BatchReport, Vec<String>) {
        let tmp = TempDir::new("jobs");
        let report = compile_batch_jobs(&c, &inputs, tmp.path(), &permissive, false, None, jobs);
        let texts = report
            .items
            .iter()
            .map(|i| fs::read_to_string(i.result.as_ref().expect("fixture compiles")).unwrap())
            .collect();
        (report, texts)
    };
    let (one, one_texts) = outputs(1);
    let (many, many_texts) = outputs(4);
    assert!(!one.any_failed() && !many.any_failed());
    assert_eq!(one.exit_code(), exit::OK);
    assert_eq!(one_texts, many_texts);
    for (input, text) in inputs.iter().zip(&one_texts) {
        assert_eq!(
            text,
            &single(&c, input, &permissive, false),
            "{}",
            input.display()
        );
        assert!(
            text.contains("127.0.0.1:3129"),
            "--set reaches every manifest"
        );
    }
}

#[test]
fn colliding_artifact_names_are_refused_not_overwritten() {
    let tmp = TempDir::new("dup");
    let a = copy(
        &fixture("manifests/github.json"),
        &tmp.path().join("a/x.json"),
    );
    let b = copy(
        &fixture("manifests/fetch.json"),
        &tmp.path().join("b/x.json"),
    );
    let other = fixture("manifests/fetch.json");
    let out = tmp.path().join("out");
    let report = compile_batch(
        &compiler("docker"),
        &[a.clone(), other, b.clone()],
        &out,
        &strict(),
        false,
        None,
    );
    assert_eq!(report.succeeded(), 1);
    assert!(out.join("fetch.docker.json").is_file());
    assert!(!out.join("x.docker.json").exists());
    for (i, twin) in [(0, &b), (2, &a)] {
        match &report.items[i].result {
            Err(f @ Failure::DuplicateOutput { output, others }) => {
                assert_eq!(output, &out.join("x.docker.json"));
                assert_eq!(others, &vec![twin.clone()]);
                assert!(f.to_string().contains("rename one of the manifests"), "{f}");
                assert!(f.diagnostics().is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_artifact_never_overwrites_an_input() {
    let tmp = TempDir::new("overwrite");
    let a = copy(
        &fixture("manifests/github.json"),
        &tmp.path().join("a.json"),
    );
    // A manifest that happens to be named like a's artifact.
    let named_like_artifact = copy(
        &fixture("manifests/fetch.json"),
        &tmp.path().join("a.nftables.json"),
    );
    let before = fs::read(&named_like_artifact).unwrap();
    let settings = Settings {
        permissive: true,
        set: vec![],
    };
    let report = compile_batch(
        &compiler("nftables"),
        &[a, named_like_artifact.clone()],
        tmp.path(),
        &settings,
        false,
        None,
    );
    assert!(
        matches!(report.items[0].result, Err(Failure::OverwritesInput { .. })),
        "{:?}",
        report.items[0]
    );
    assert_eq!(
        report.items[1].result.as_ref().unwrap(),
        &tmp.path().join("a.nftables.nftables.json")
    );
    assert_eq!(fs::read(&named_like_artifact).unwrap(), before);
}

#[test]
fn unwritable_output_directory_fails_every_input_with_the_reason() {
    let tmp = TempDir::new("unwritable");
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let inputs = [
        fixture("manifests/github.json"),
        fixture("manifests/fetch.json"),
    ];
    let report = compile_batch(
        &compiler("bwrap"),
        &inputs,
        &file.join("out"),
        &strict(),
        false,
        None,
    );
    assert_eq!(report.succeeded(), 0);
    for item in &report.items {
        assert!(
            matches!(item.result, Err(Failure::Write { .. })),
            "{item:?}"
        );
    }
    assert_eq!(report.exit_code(), exit::COMPILE);
}

#[test]
fn empty_batch_is_a_success() {
    let tmp = TempDir::new("empty");
    let report = compile_batch(
        &compiler("bwrap"),
        &[],
        &tmp.path().join("out"),
        &strict(),
        false,
        None,
    );
    assert!(report.items.is_empty());
    assert_eq!(report.exit_code(), exit::OK);
    assert!(
        !tmp.path().join("out").exists(),
        "nothing to write, nothing created"
    );
}

#[test]
fn directories_expand_to_their_json_files_sorted_once() {
    let tmp = TempDir::new("expand");
    let d = tmp.path();
    for name in ["b.json", "a.json", "c.txt", "sub/d.json", "e.JSON"] {
        let p = d.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "{}").unwrap();
    }
    fs::create_dir_all(d.join("dir.json")).unwrap();
    let single = d.join("sub/d.json");
    let missing = d.join("missing.json");
    let got = expand_inputs(&[
        single.clone(),
        d.to_owned(),
        d.join("a.json"),
        missing.clone(),
    ])
    .unwrap();
    assert_eq!(
        got,
        vec![single, d.join("a.json"), d.join("b.json"), missing]
    );
    assert!(expand_inputs(&[]).unwrap().is_empty());
}

/// F13 of the first adversarial review: someone who can write to the `--out`
/// directory plants links where capgate (often root) writes. The artifact
/// must replace whatever is at its name and nothing else may be written:
/// the victims stay untouched, and the artifact is a regular file.
#[test]
fn batch_output_never_writes_through_planted_links() {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    use std::process::Command;
    let dir = TempDir::new("links");
    let input = dir.path().join("in/x.json");
    fs::create_dir_all(input.parent().unwrap()).unwrap();
    fs::write(&input, r#"{"name":"t","version":"1","tools":[]}"#).unwrap();
    let victim = dir.path().join("victim.txt");
    let original = "ORIGINAL VICTIM CONTENT\n";
    // Each case plants something in the out dir before capgate runs; `$$` is
    // the pid capgate will have (the shell execs it).
    let cases: [(&str, String); 6] = [
        // The old predictable temp name, as in the review's repro.
        ("symlink at the temp name", "ln -s \"$V\" \"$O/.x.bwrap.json.$$.tmp\"".into()),
        // Likely temp names of several pids around ours.
        (
            "symlinks at nearby temp names",
            "for p in $(seq $(($$-5)) $(($$+5))); do ln -s \"$V\" \"$O/.x.bwrap.json.$p.tmp\"; done".into(),
        ),
        ("symlink at the final name", "ln -s \"$V\" \"$O/x.bwrap.json\"".into()),
        (
            "dangling symlink at the final name",
            "ln -s \"$D/created-by-capgate\" \"$O/x.bwrap.json\"".into(),
        ),
        ("hard link at the final name", "ln \"$V\" \"$O/x.bwrap.json\"".into()),
        ("FIFO at the final name", "mkfifo \"$O/x.bwrap.json\"".into()),
    ];
    for (what, plant) in cases {
        let out = dir.path().join("out");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).unwrap();
        fs::write(&victim, original).unwrap();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{plant}; exec \"$B\" compile \"$I\" --target bwrap --out \"$O\" >/dev/null"
            ))
            .env("B", env!("CARGO_BIN_EXE_capgate"))
            .env("V", &victim)
            .env("O", &out)
            .env("D", dir.path())
            .env("I", &input)
            .status()
            .unwrap();
        assert!(status.success(), "{what}: capgate failed");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            original,
            "{what}: victim written"
        );
        assert_eq!(
            fs::metadata(&victim).unwrap().nlink(),
            1,
            "{what}: victim still linked from out"
        );
        assert!(
            !dir.path().join("created-by-capgate").exists(),
            "{what}: dangling link followed"
        );
        let artifact = out.join("x.bwrap.json");
        let meta = fs::symlink_metadata(&artifact).unwrap();
        assert!(
            meta.file_type().is_file() && !meta.file_type().is_fifo(),
            "{what}: artifact is {:?}",
            meta.file_type()
        );
        let text = fs::read_to_string(&artifact).unwrap();
        assert!(text.starts_with("{\"argv\""), "{what}: {text}");
        // No temporary file left behind other than the planted ones.
        for e in fs::read_dir(&out).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                name == "x.bwrap.json" || e.file_type().unwrap().is_symlink(),
                "{what}: left {name}"
            );
        }
    }
}
