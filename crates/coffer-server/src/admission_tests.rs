use super::*;

fn tenant(n: u8) -> Holder {
    Some(TenantId::from_bytes([n; 16]))
}

fn take(a: &Admission, class: Class, who: Holder, n: usize, at: Instant) -> Vec<Slot> {
    (0..n)
        .map(|i| {
            a.admit_at(class, who, at)
                .unwrap_or_else(|shed| panic!("slot {i} refused: {shed:?}"))
        })
        .collect()
}

#[test]
fn a_full_class_sheds_a_lone_tenant_with_backpressure_and_frees_on_drop() {
    let a = Admission::new([2, 2, 2, 2], 0.05);
    let now = Instant::now();
    let held = take(&a, Class::Sign, tenant(1), 2, now);
    assert_eq!(a.inflight(Class::Sign), 2);
    assert_eq!(
        a.admit_at(Class::Sign, tenant(1), now).unwrap_err(),
        Shed::Backpressure
    );
    // Other classes have their own slots.
    let _verify = a.admit_at(Class::Verify, tenant(1), now).unwrap();
    drop(held);
    assert_eq!(a.inflight(Class::Sign), 0);
    assert!(a.admit_at(Class::Sign, tenant(1), now).is_ok());
}

#[test]
fn a_flooding_tenant_leaves_an_active_tenants_floor_free() {
    // 20 slots, 10 % floor: 2 slots each.
    let a = Admission::new([20, 20, 20, 20], 0.10);
    assert_eq!(a.floor(Class::Wrap), 2);
    let now = Instant::now();
    // The quiet tenant was seen a moment ago and has nothing in flight now.
    drop(a.admit_at(Class::Wrap, tenant(2), now).unwrap());
    let later = now + Duration::from_millis(100);
    let noisy = take(&a, Class::Wrap, tenant(1), 18, later);
    assert_eq!(
        a.admit_at(Class::Wrap, tenant(1), later).unwrap_err(),
        Shed::TenantShare
    );
    let quiet = take(&a, Class::Wrap, tenant(2), 2, later);
    // Now the class is full: the noisy tenant is over its share, the quiet one is at
    // its floor and is told the server is saturated.
    assert_eq!(
        a.admit_at(Class::Wrap, tenant(2), later).unwrap_err(),
        Shed::Backpressure
    );
    assert_eq!(
        a.admit_at(Class::Wrap, tenant(1), later).unwrap_err(),
        Shed::TenantShare
    );
    drop((noisy, quiet));
}

#[test]
fn a_tenant_idle_past_the_window_no_longer_holds_a_reservation() {
    let a = Admission::new([4, 4, 4, 4], 0.25);
    let now = Instant::now();
    drop(a.admit_at(Class::Sign, tenant(2), now).unwrap());
    // Within the window: one slot stays reserved for tenant 2.
    let soon = now + ACTIVE_WINDOW / 2;
    let held = take(&a, Class::Sign, tenant(1), 3, soon);
    assert!(a.admit_at(Class::Sign, tenant(1), soon).is_err());
    drop(held);
    // Past it: tenant 1 may fill the class alone.
    let late = now + ACTIVE_WINDOW * 2;
    let _all = take(&a, Class::Sign, tenant(1), 4, late);
}

#[test]
fn a_newcomer_refused_at_a_full_class_is_reserved_for_from_then_on() {
    let a = Admission::new([10, 10, 10, 10], 0.05);
    let now = Instant::now();
    let mut noisy = take(&a, Class::Verify, tenant(1), 10, now);
    // Tenant 3 was never seen: the class is full, tenant 1 holds all of it.
    assert_eq!(
        a.admit_at(Class::Verify, tenant(3), now).unwrap_err(),
        Shed::Backpressure
    );
    // One of tenant 1's requests ends; its next one may not take the freed slot,
    // which is tenant 3's floor now.
    noisy.pop();
    assert_eq!(
        a.admit_at(Class::Verify, tenant(1), now).unwrap_err(),
        Shed::TenantShare
    );
    let _quiet = a.admit_at(Class::Verify, tenant(3), now).unwrap();
}

#[test]
fn floors_that_exceed_the_cap_still_admit_tenants_below_theirs() {
    // 4 slots, floor 2 each, three active tenants: 6 > 4.
    let a = Admission::new([4, 4, 4, 4], 0.5);
    let now = Instant::now();
    let first = take(&a, Class::Admin, tenant(1), 1, now);
    let second = take(&a, Class::Admin, tenant(2), 1, now);
    let third = take(&a, Class::Admin, tenant(3), 1, now);
    // Tenant 1 below its floor takes the last free slot.
    let more = take(&a, Class::Admin, tenant(1), 1, now);
    assert!(a.admit_at(Class::Admin, tenant(2), now).is_err());
    drop((first, second, third, more));
    assert_eq!(a.inflight(Class::Admin), 0);
}

#[test]
fn operators_count_as_one_holder() {
    let a = Admission::new([1, 1, 1, 1], 1.0);
    let now = Instant::now();
    let _held = a.admit_at(Class::Admin, None, now).unwrap();
    assert_eq!(
        a.admit_at(Class::Admin, None, now).unwrap_err(),
        Shed::Backpressure
    );
}
