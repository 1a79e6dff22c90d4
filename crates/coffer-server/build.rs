//! Generates the gRPC front's code from `proto/coffer/v1/kms.proto`.
//!
//! protox parses the file in Rust, so a build needs no `protoc` on the machine;
//! tonic-prost-build turns the descriptors into messages, the server trait and a client
//! (generic over its transport, so the server pulls in no HTTP client).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("coffer/v1/kms.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        // The native API's contexts are ordered maps: the same type on both fronts.
        .btree_map(".")
        // A message that does not decode is the caller's error (`grpc::codec`).
        .codec_path("crate::grpc::codec::Codec")
        // Messages that carry a plaintext or data key print it elided (`grpc::proto`).
        .skip_debug([
            "coffer.v1.WrapRequest",
            "coffer.v1.UnwrapResponse",
            "coffer.v1.DatakeyResponse",
        ])
        .compile_fds(descriptors)?;
    Ok(())
}
