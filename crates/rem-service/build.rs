//! Generates the gRPC code from `proto/database.proto` with a vendored `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/database.proto");
    tonic_prost_build::configure().compile_protos(&["proto/database.proto"], &["proto"])?;
    Ok(())
}
