//! `[grpc]`: the gRPC front's port, off unless an address is given.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// The `[grpc]` section, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrpcConfig {
    /// Where the gRPC front listens (seed 002's `:9445`); `None`: no gRPC port at all.
    pub addr: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrpc {
    addr: Option<String>,
}

impl RawGrpc {
    /// Validates: an address, or nothing.
    pub(super) fn validate(self) -> Result<GrpcConfig, ConfigError> {
        let addr = self
            .addr
            .map(|text| {
                text.parse()
                    .map_err(|_| invalid("grpc.addr", "expected host:port, e.g. 127.0.0.1:9445"))
            })
            .transpose()?;
        Ok(GrpcConfig { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grpc_port_is_off_unless_an_address_is_given() {
        assert_eq!(RawGrpc::default().validate().unwrap().addr, None);
        let on = RawGrpc {
            addr: Some("127.0.0.1:9445".into()),
        };
        assert_eq!(on.validate().unwrap().addr.unwrap().port(), 9445);
        let bad = RawGrpc {
            addr: Some("9445".into()),
        }
        .validate()
        .unwrap_err();
        assert!(bad.to_string().contains("`grpc.addr`"), "{bad}");
    }
}
