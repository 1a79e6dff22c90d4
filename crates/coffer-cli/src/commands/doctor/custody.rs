//! The custody check: sealed or unsealed; for PKCS#11, whether the token answers and
//! what the server holds of it (module, slot, token, root key handles, session pool).

use coffer_api::admin::CustodyView;

use super::{CheckName, Context, Report, Status};

pub(super) async fn custody(context: &Context) -> Report {
    const NAME: CheckName = CheckName::Custody;
    let seal = match context.client.seal_status().await {
        Ok(seal) => seal,
        Err(error) => {
            let detail = format!("cannot read the seal status: {error}");
            return Report::new(NAME, Status::Critical, detail);
        }
    };
    if seal.method == "pkcs11" {
        return match context.client.custody(&context.ops_addr).await {
            Ok(view) => pkcs11_report(&view),
            Err(error) => Report::new(
                NAME,
                Status::Critical,
                format!("pkcs11: cannot read the custody state from the ops port: {error}"),
            ),
        };
    }
    if !seal.sealed {
        return Report::new(NAME, Status::Ok, format!("unsealed ({})", seal.method));
    }
    let mut detail = format!("sealed ({})", seal.method);
    if seal.threshold > 1 {
        detail.push_str(&format!(", {}/{} shares", seal.progress, seal.threshold));
    }
    detail.push_str("; run `coffer unseal`");
    Report::new(NAME, Status::Critical, detail)
}

/// Module, slot, token, root key handles and the session pool; critical while the
/// token is unreachable.
fn pkcs11_report(view: &CustodyView) -> Report {
    const NAME: CheckName = CheckName::Custody;
    let Some(token) = &view.pkcs11 else {
        return Report::new(
            NAME,
            Status::Critical,
            "pkcs11: the server sent no token state",
        );
    };
    if !view.available {
        let detail = format!(
            "pkcs11: the HSM is unreachable ({}); module {}, {}, {} reconnect attempts, failover {}",
            token.reason.as_deref().unwrap_or("no reason given"),
            token.module,
            token.token,
            token.reconnects,
            token.failover
        );
        return Report::new(NAME, Status::Critical, detail);
    }
    let roots: Vec<String> = token
        .root_keys
        .iter()
        .map(|r| format!("generation {} = handle {}", r.generation, r.handle))
        .collect();
    let pool = token.pool.as_ref().map_or_else(
        || "no pool".to_owned(),
        |p| format!("sessions {} open ({} idle) of {}", p.open, p.idle, p.max),
    );
    let detail = format!(
        "pkcs11: module {}, slot {}, token {:?}, root keys [{}], {}, {} reconnects, failover {}",
        token.module,
        token.slot.map_or_else(|| "?".to_owned(), |s| s.to_string()),
        token.token_label.as_deref().unwrap_or("?"),
        roots.join(", "),
        pool,
        token.reconnects,
        token.failover
    );
    Report::new(NAME, Status::Ok, detail)
}
