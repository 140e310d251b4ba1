//! Snapshot tests: every manifest under fixtures/ compiled for every target.
//! Each snapshot records its input file and shows the input manifest.

mod common;

use std::path::Path;

use common::{display, outcome};

fn snapshot(path: &Path, target: &str) {
    let input = std::fs::read_to_string(path).unwrap_or_else(|_| "<not UTF-8>".to_owned());
    insta::with_settings!({
        description => input,
        info => &display(path),
        omit_expression => true,
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(target, outcome(path, target));
    });
}

#[test]
fn bwrap() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| snapshot(
        p, "bwrap"
    ));
}

#[test]
fn docker() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| snapshot(
        p, "docker"
    ));
}

#[test]
fn squid() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| snapshot(
        p, "squid"
    ));
}

#[test]
fn nftables() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| snapshot(
        p, "nftables"
    ));
}

/// The seccomp syscall list (12 kB, the same for every manifest but for
/// nestedSandbox) is replaced by the template that wrote it; tests/oci.rs
/// validates and runs the whole config.
#[test]
fn oci() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| {
        let input = std::fs::read_to_string(p).unwrap_or_else(|_| "<not UTF-8>".to_owned());
        let mut out = outcome(p, "oci");
        let head = "\\\"syscalls\\\": [";
        while let Some(at) = out.find(head) {
            let start = at + head.len();
            let len = out[start..]
                .find("\\n      ]")
                .expect("end of the syscall list");
            let template = if out[start..start + len].contains("[\\\"clone\\\", \\\"clone3\\\"") {
                "seccomp-nested.json.j2"
            } else {
                "seccomp.json.j2"
            };
            out.replace_range(
                at..start + len,
                &format!("\\\"syscalls\\\": <templates/oci/{template}>"),
            );
        }
        insta::with_settings!({
            description => input,
            info => &display(p),
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!("oci", out);
        });
    });
}

#[test]
fn systemd() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| snapshot(
        p, "systemd"
    ));
}

#[test]
fn srt() {
    insta::glob!("../fixtures", "{manifests,injection}/*.json", |p| snapshot(
        p, "srt"
    ));
}

/// Invalid manifests: every diagnostic, as a user sees it.
#[test]
fn errors() {
    insta::glob!("../fixtures", "errors/*.json", |p| {
        let input = std::fs::read_to_string(p).unwrap_or_default();
        let diags = match common::compile(p, "bwrap", false) {
            Ok(_) => panic!("{} compiled, but it is an error fixture", p.display()),
            Err(d) => d,
        };
        insta::with_settings!({
            description => input,
            info => &display(p),
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(common::render_errors(&diags));
        });
    });
}
