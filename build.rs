//! espeak-ng (built from source by espeak-rs-sys, inside piper-rs) finds the system libsonic at
//! configure time instead of cloning it, but leaves linking it to us: link Debian's static
//! libsonic, which lives in the multiarch directory rustc does not search by itself.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_SPEECH").is_none() {
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    println!("cargo:rustc-link-search=native=/usr/lib/{arch}-linux-gnu");
    println!("cargo:rustc-link-lib=static=sonic");
}
