//! Dual read (seed 003 step 1): the data key of a sidecar, whichever provider wrapped it,
//! so readers keep working while the migration runs. Cutover (step 3) refuses the legacy
//! path.

use anyhow::{Context as _, anyhow, bail};
use coffer_api::B64;
use coffer_api::crypto::{Context, UnwrapRequest};
use coffer_client::Client;
use coffer_crypto::SecretBytes;

use super::legacy_key::LegacyKey;
use super::sidecar::{LegacySource, Provider, Sidecar};

/// Whether legacy sidecars may still be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutover {
    /// Legacy and Coffer sidecars both open (during the migration).
    DualRead,
    /// Only Coffer sidecars open; a legacy one is an error (after step 3).
    CofferOnly,
}

/// Opens the data key of `sidecar`: locally with the legacy key, or by `unwrap` at
/// Coffer (with `context`, as the data key was wrapped).
pub async fn data_key(
    client: &Client,
    sidecar: &Sidecar,
    legacy: Option<&LegacyKey>,
    cutover: Cutover,
    context: &Context,
) -> anyhow::Result<SecretBytes> {
    match &sidecar.provider {
        Provider::Legacy { .. } if cutover == Cutover::CofferOnly => bail!(
            "`{}` is still wrapped by the legacy provider, and cutover refuses the legacy path",
            sidecar.id
        ),
        Provider::Legacy {
            source: LegacySource::Dpapi,
            ..
        } => {
            bail!(
                "`{}` is wrapped by DPAPI, which only its Windows host can open",
                sidecar.id
            )
        }
        Provider::Legacy { alg, .. } => {
            let key = legacy.ok_or_else(|| {
                anyhow!(
                    "`{}` is legacy-wrapped: give --legacy-key-env or --legacy-key-file",
                    sidecar.id
                )
            })?;
            key.unwrap(*alg, &sidecar.wrapped_dek)
                .with_context(|| format!("cannot open the legacy data key of `{}`", sidecar.id))
        }
        Provider::Coffer { .. } => {
            let answer = client
                .unwrap(&UnwrapRequest {
                    attestation: None,
                    ciphertext: B64(sidecar.wrapped_dek.clone()),
                    context: context.clone(),
                })
                .await
                .with_context(|| {
                    format!("Coffer cannot unwrap the data key of `{}`", sidecar.id)
                })?;
            Ok(SecretBytes::copy_from(answer.plaintext.expose_secret()))
        }
    }
}
