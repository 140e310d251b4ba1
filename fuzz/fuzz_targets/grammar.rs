//! Capability grammar: any string either parses or fails with a span that
//! fits it; an accepted capability never holds a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match capgate::syntax::parse_capability(raw) {
        Ok(_) => assert!(!raw.chars().any(char::is_control), "accepted {raw:?}"),
        Err(e) => {
            let s = e.span;
            assert!(s.start <= s.end && s.end <= raw.len(), "{raw:?}: {s:?}");
            assert!(
                raw.is_char_boundary(s.start) && raw.is_char_boundary(s.end),
                "{raw:?}: {s:?}"
            );
        }
    }
});
