//! The token flaps under load (its directory moved away and back): calls fail with
//! `Unavailable` instead of panicking or hanging, reconnects are counted, and once the
//! token is back everything wrapped before unwraps again. Its own binary: the flap
//! reloads the process's SoftHSM module, which would disturb other tests' tokens.

#[path = "pkcs11/softhsm.rs"]
mod softhsm;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffer_core::{Custody, CustodyError};
use coffer_custody_pkcs11::Pkcs11Custody;

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_flapping_token_is_survived_and_reconnected() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let label = hsm.new_token();
    let custody = Pkcs11Custody::init(hsm.config(&label)).expect("init");
    let before = custody
        .wrap(b"aad", b"wrapped before the flap")
        .expect("wrap");

    // Load: four threads wrap and unwrap until told to stop, counting outcomes.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4u8)
        .map(|i| {
            let (custody, stop, ok, unavailable) = (
                custody.clone(),
                stop.clone(),
                ok.clone(),
                unavailable.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match custody
                        .wrap(&[i], &[i; 32])
                        .and_then(|w| custody.unwrap(&[i], &w))
                    {
                        Ok(secret) => {
                            assert_eq!(secret.expose_secret(), [i; 32]);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(CustodyError::Unavailable(_)) => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => panic!("unexpected error during the flap: {other}"),
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    wait_for("load before the flap", Duration::from_secs(10), || {
        ok.load(Ordering::Relaxed) > 20
    });

    // The token goes away: every token directory is moved aside.
    let tokens = hsm.conf.parent().expect("dir").join("tokens");
    let aside = hsm.conf.parent().expect("dir").join("tokens-away");
    std::fs::rename(&tokens, &aside).expect("move the tokens away");
    std::fs::create_dir(&tokens).expect("empty tokens dir");
    wait_for("the custody to notice", Duration::from_secs(10), || {
        !custody.is_up()
    });
    assert!(!custody.available());
    let reconnects_while_down = custody.health().reconnects;
    wait_for("reconnect attempts", Duration::from_secs(10), || {
        custody.health().reconnects > reconnects_while_down + 1
    });
    assert!(matches!(
        custody.unwrap(b"aad", &before),
        Err(CustodyError::Unavailable(_))
    ));
    let health = custody.health();
    assert!(!health.up && health.reason.is_some() && health.pool.is_none());

    // The token comes back.
    std::fs::remove_dir(&tokens).expect("remove the empty dir");
    std::fs::rename(&aside, &tokens).expect("move the tokens back");
    wait_for("the reconnect", Duration::from_secs(10), || custody.is_up());
    let served_after = ok.load(Ordering::Relaxed);
    wait_for("load after the flap", Duration::from_secs(10), || {
        ok.load(Ordering::Relaxed) > served_after + 20
    });
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().expect("no load thread panicked");
    }
    assert!(unavailable.load(Ordering::Relaxed) > 0, "the flap was seen");
    assert_eq!(
        custody
            .unwrap(b"aad", &before)
            .expect("unwrap after")
            .expose_secret(),
        b"wrapped before the flap"
    );
    let health = custody.health();
    assert!(health.up && health.reconnects >= 2);
    assert_eq!(health.token_label.as_deref(), Some(label.as_str()));
}
