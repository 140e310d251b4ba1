// include_dir! tracks changed files but not added or removed ones on stable Rust.
fn main() {
    println!("cargo:rerun-if-changed=rules");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=grammar");
}
