//! The methods of `coffer.v1.Kms`: each takes the caller the gate admitted, converts the
//! message to the native request, and calls the native handler's per-item function.

use coffer_api::ErrorCode;
use coffer_core::kms::Caller;
use tonic::{Request, Response, Status};

use super::proto;
use super::status::status;
use crate::error::{ApiError, ApiResult};
use crate::handlers::crypto;
use crate::state::AppState;

/// The service behind the gRPC router.
pub struct Front {
    state: AppState,
}

/// Whether an operation uses secret key material, which `custody.failover =
/// "verify-only"` refuses while the token is away (as the native handlers do).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Uses {
    SecretKey,
    PublicKey,
}

impl Front {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The admitted caller and the message.
    fn begin<T>(&self, mut request: Request<T>, uses: Uses) -> Result<(Caller, T), Status> {
        // The gate puts the caller on every routed call; none means no gate ran, and
        // nothing is served without one.
        let caller = request.extensions_mut().remove::<Caller>().ok_or_else(|| {
            status(ApiError::new(
                ErrorCode::Unauthorized,
                "missing Authorization: Bearer token",
            ))
        })?;
        if uses == Uses::SecretKey
            && let Some(refused) = crypto::refusal_by_failover(&self.state)
        {
            return Err(status(refused));
        }
        Ok((caller, request.into_inner()))
    }
}

fn reply<A, P: From<A>>(answer: ApiResult<A>) -> Result<Response<P>, Status> {
    answer.map(|a| Response::new(a.into())).map_err(status)
}

#[tonic::async_trait]
impl proto::kms_server::Kms for Front {
    async fn wrap(
        &self,
        request: Request<proto::WrapRequest>,
    ) -> Result<Response<proto::CiphertextResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::wrap_one(&self.state, &caller, r.into()).await)
    }

    async fn unwrap(
        &self,
        request: Request<proto::UnwrapRequest>,
    ) -> Result<Response<proto::UnwrapResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::unwrap_one(&self.state, &caller, r.into()).await)
    }

    async fn datakey(
        &self,
        request: Request<proto::DatakeyRequest>,
    ) -> Result<Response<proto::DatakeyResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::datakey_one(&self.state, &caller, r.into()).await)
    }

    async fn rewrap(
        &self,
        request: Request<proto::RewrapRequest>,
    ) -> Result<Response<proto::CiphertextResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::rewrap_one(&self.state, &caller, r.into()).await)
    }

    async fn sign(
        &self,
        request: Request<proto::SignRequest>,
    ) -> Result<Response<proto::SignResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::sign_one(&self.state, &caller, r.into()).await)
    }

    async fn verify(
        &self,
        request: Request<proto::VerifyRequest>,
    ) -> Result<Response<proto::VerifyResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::PublicKey)?;
        reply(crypto::verify_one(&self.state, &caller, r.into()).await)
    }

    async fn mac(
        &self,
        request: Request<proto::MacRequest>,
    ) -> Result<Response<proto::MacResponse>, Status> {
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::mac_one(&self.state, &caller, r.into()).await)
    }

    async fn verify_mac(
        &self,
        request: Request<proto::VerifyMacRequest>,
    ) -> Result<Response<proto::VerifyResponse>, Status> {
        // An HMAC key is secret: verifying a tag uses it (as the native handler says).
        let (caller, r) = self.begin(request, Uses::SecretKey)?;
        reply(crypto::verify_mac_one(&self.state, &caller, r.into()).await)
    }
}
