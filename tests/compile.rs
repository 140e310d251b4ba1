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
