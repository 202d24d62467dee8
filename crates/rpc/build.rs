//! Compiles `proto/*.proto` with protox (pure Rust: no `protoc` binary needed).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/common.proto",
        "proto/raft.proto",
        "proto/mserver.proto",
        "proto/tablet.proto",
        "proto/status.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
