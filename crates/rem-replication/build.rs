//! Generates the gRPC code from `proto/replication.proto` with a vendored `protoc`
//! (no system protobuf compiler needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/replication.proto");
    tonic_prost_build::configure().compile_protos(&["proto/replication.proto"], &["proto"])?;
    Ok(())
}
