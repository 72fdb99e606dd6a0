//! The rule manager driven by a manual clock: aligned slots, restarts that
//! neither skip nor repeat an evaluation, no backfill after downtime,
//! missed iterations, and reloads (a bad file keeps the old groups).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use tessera_query::Engine;
use tessera_query::rules::{EvalReport, ManagerOptions, ManualClock, RuleManager, Schedule};
use tessera_tsdb::{Db, Matcher, Sample, is_stale_nan};

const T0: i64 = 1_700_000_000_123;
const WAIT: Duration = Duration::from_secs(10);

struct Run {
    manager: RuleManager,
    reports: Receiver<EvalReport>,
}

fn start(path: &Path, clock: &Arc<ManualClock>, db: &Arc<Db>) -> Run {
    let opts = ManagerOptions {
        patterns: vec![path.display().to_string()],
        default_interval: Duration::from_secs(10),
        ..Default::default()
    };
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    let (m, _) = RuleManager::load(opts, Engine::default()).expect("load rules");
    let m = m
        .with_clock(clock.clone())
        .with_observer(Arc::new(move |r: &EvalReport| {
            let _ = tx.lock().unwrap().send(r.clone());
        }));
    let groups = m.groups().len();
    m.start(db.clone(), Arc::new(common::Direct(db.clone())))
        .unwrap();
    // Each group thread has computed its schedule once it sleeps.
    assert!(
        clock.wait_for_sleepers(groups, WAIT),
        "group threads did not start"
    );
    Run {
        manager: m,
        reports: rx,
    }
}

/// The first slot after `now` of the only group, and its interval.
fn first_slot(run: &Run, now: i64) -> (i64, i64) {
    let g = &run.manager.group_handles()[0];
    let s = Schedule::new(g.interval_ms(), g.slot_offset_ms(), now);
    (s.next_ms(), g.interval_ms())
}

fn timestamps(db: &Db, name: &str) -> Vec<Sample> {
    db.select(&[Matcher::equal("__name__", name)], 0, i64::MAX / 2)
        .into_iter()
        .flat_map(|s| s.samples)
        .collect()
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("rules.yml");
    std::fs::write(&p, text).unwrap();
    p
}

const ONE: &str = "groups:\n- name: g\n  rules:\n  - record: one\n    expr: vector(1)\n";

#[test]
fn restart_mid_interval_neither_skips_nor_repeats_and_downtime_is_not_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ONE);
    let db = Arc::new(Db::in_memory(1));
    let clock = Arc::new(ManualClock::new(T0));

    let a = start(&path, &clock, &db);
    let (s1, i) = first_slot(&a, T0);
    assert!(s1 > T0 && s1 <= T0 + i);
    for slot in [s1, s1 + i] {
        clock.set(slot);
        assert_eq!(a.reports.recv_timeout(WAIT).unwrap().slot_ms, slot);
    }
    // Stop half-way to the third slot; nothing evaluates meanwhile.
    clock.set(s1 + i + i / 2);
    a.manager.stop();
    assert!(a.reports.try_recv().is_err());

    // Restart in the same interval: the next slot is the third one.
    let b = start(&path, &clock, &db);
    clock.set(s1 + 2 * i);
    let r = b.reports.recv_timeout(WAIT).unwrap();
    assert_eq!((r.slot_ms, r.missed), (s1 + 2 * i, 0));
    b.manager.stop();

    // Down for two whole slots: they are not backfilled.
    clock.set(s1 + 4 * i + i / 2);
    let c = start(&path, &clock, &db);
    clock.set(s1 + 5 * i);
    assert_eq!(c.reports.recv_timeout(WAIT).unwrap().slot_ms, s1 + 5 * i);
    c.manager.stop();

    let got: Vec<i64> = timestamps(&db, "one").iter().map(|s| s.t).collect();
    assert_eq!(got, vec![s1, s1 + i, s1 + 2 * i, s1 + 5 * i]);
}

#[test]
fn an_overrun_skips_to_the_latest_slot_and_counts_missed_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ONE);
    let db = Arc::new(Db::in_memory(1));
    let clock = Arc::new(ManualClock::new(T0));
    let run = start(&path, &clock, &db);
    let (s1, i) = first_slot(&run, T0);
    clock.set(s1);
    assert_eq!(run.reports.recv_timeout(WAIT).unwrap().missed, 0);
    // The clock jumps past three more slots at once (a stalled process).
    clock.set(s1 + 3 * i + 1);
    let r = run.reports.recv_timeout(WAIT).unwrap();
    assert_eq!((r.slot_ms, r.missed), (s1 + 3 * i, 2));
    let st = &run.manager.groups()[0];
    assert_eq!(
        (st.counters.iterations, st.counters.iterations_missed),
        (4, 2)
    );
    assert_eq!(st.last_evaluation_ms, Some(s1 + 3 * i + 1));
}

#[test]
fn reload_with_a_bad_file_keeps_the_old_groups_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ONE);
    let db = Arc::new(Db::in_memory(1));
    let clock = Arc::new(ManualClock::new(T0));
    let run = start(&path, &clock, &db);
    let (s1, i) = first_slot(&run, T0);

    for bad in [
        "groups:\n- name: g\n  rules:\n  - record: 'no good'\n    expr: vector(1)\n",
        "groups: [\n",
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum((\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = run.manager.reload().expect_err(bad).to_string();
        assert!(err.contains("rules.yml"), "{err}");
    }
    let groups = run.manager.groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].rules[0].name, "one");
    clock.set(s1);
    assert_eq!(run.reports.recv_timeout(WAIT).unwrap().slot_ms, s1);
    assert_eq!(timestamps(&db, "one").len(), 1);

    // A good reload replaces the rule; the removed rule's series is marked
    // stale at the changed group's first evaluation.
    std::fs::write(
        &path,
        "groups:\n- name: g\n  rules:\n  - record: two\n    expr: vector(2)\n",
    )
    .unwrap();
    let summary = run.manager.reload().unwrap();
    assert_eq!((summary.groups, summary.recording_rules), (1, 1));
    assert!(clock.wait_for_sleepers(1, WAIT));
    clock.set(s1 + i);
    assert_eq!(run.reports.recv_timeout(WAIT).unwrap().slot_ms, s1 + i);
    assert_eq!(timestamps(&db, "two"), vec![Sample::new(s1 + i, 2.0)]);
    let one = timestamps(&db, "one");
    assert_eq!(one.len(), 2);
    assert!(is_stale_nan(one[1].v) && one[1].t == s1 + i, "{one:?}");
    // Counters survive the change.
    assert_eq!(run.manager.groups()[0].counters.evaluations, 2);
}

#[test]
fn reload_keeps_an_unchanged_group_without_restarting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ONE);
    let db = Arc::new(Db::in_memory(1));
    let clock = Arc::new(ManualClock::new(T0));
    let run = start(&path, &clock, &db);
    let before = run.manager.group_handles();
    run.manager.reload().unwrap();
    let after = run.manager.group_handles();
    assert!(Arc::ptr_eq(&before[0], &after[0]));
}

#[test]
fn removed_group_series_are_marked_stale_two_intervals_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ONE);
    let db = Arc::new(Db::in_memory(1));
    let clock = Arc::new(ManualClock::new(T0));
    let run = start(&path, &clock, &db);
    let (s1, i) = first_slot(&run, T0);
    clock.set(s1);
    run.reports.recv_timeout(WAIT).unwrap();
    std::fs::write(&path, "groups: []\n").unwrap();
    clock.set(s1 + 1);
    run.manager.reload().unwrap();
    assert!(run.manager.groups().is_empty());
    assert!(clock.wait_for_sleepers(1, WAIT), "the stale writer waits");
    clock.set(s1 + 1 + 2 * i);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let one = timestamps(&db, "one");
        if one.len() == 2 {
            assert!(is_stale_nan(one[1].v) && one[1].t == s1 + 1, "{one:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no staleness marker: {one:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn glob_patterns_load_every_matching_file_and_alerts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yml"), ONE).unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - record: r\n    expr: up\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.txt"), "not yaml: [").unwrap();
    let opts = ManagerOptions {
        patterns: vec![
            format!("{}/*.yml", dir.path().display()),
            "/nonexistent/*.yml".into(),
        ],
        ..Default::default()
    };
    let (m, summary) = RuleManager::load(opts, Engine::default()).unwrap();
    assert_eq!(
        (summary.files.len(), summary.groups, summary.recording_rules),
        (2, 2, 2)
    );
    assert_eq!(summary.alerting_rules, 1);
    // Same group name in two files is allowed.
    let groups = m.groups();
    assert_eq!(groups.len(), 2);
    assert_ne!(groups[0].file, groups[1].file);
}
