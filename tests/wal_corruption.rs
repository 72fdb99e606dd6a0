//! A damaged WAL: start-up refuses with the file, the offset and the repair
//! command; `tessera tsdb repair` keeps everything before the damage; the
//! offline `inspect` and `analyze` tools read the data dir.

mod common;

use common::*;

#[test]
fn corrupt_wal_is_reported_exactly_and_repair_keeps_what_came_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let steps = 600i64;
    {
        let t = Tessera::start_in(&dir, &["--shards", "1", "--wal.segment-size", "1024"]);
        for i in 1..=steps {
            let req = request(vec![series(
                &[("__name__", "c"), ("x", "y")],
                &[(i * 1000, i as f64)],
            )]);
            assert_eq!(t.write(&req).0, 204);
        }
        // Graceful stop (SIGTERM) so nothing is torn.
        // SAFETY: kill(2) on our own child with a standard signal.
        unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    }
    let wal = dir.join("shard-000").join("wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "expected several segments, got {segs:?}");
    // Flip a byte in the middle of the second segment: not a torn tail.
    let victim = wal.join(&segs[1]);
    let mut bytes = std::fs::read(&victim).unwrap();
    let off = bytes.len() / 2;
    bytes[off] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();

    let port = free_port().to_string();
    let out = tessera_cli(
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--shards",
            "1",
        ],
        &dir,
    );
    assert!(!out.status.success(), "start-up must refuse a corrupt WAL");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&segs[1]), "error must name the segment: {err}");
    assert!(err.contains("offset"), "error must name the offset: {err}");
    assert!(
        err.contains("tessera tsdb repair"),
        "error must name the repair command: {err}"
    );

    let out = tessera_cli(&["tsdb", "repair"], &dir);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("damage in") && report.contains(&segs[1]),
        "{report}"
    );

    let out = tessera_cli(&["tsdb", "inspect"], &dir);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("shard   0: wal"));
    let out = tessera_cli(&["tsdb", "analyze"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("series: 1"), "{text}");

    let t = Tessera::start_in(&dir, &["--shards", "1"]);
    let d = t.data(&format!("/api/v1/query?query=c[1d]&time={steps}"));
    let kept: Vec<i64> = d["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_i64().unwrap())
        .collect();
    // Everything before the damage, contiguous from the first step.
    assert!(
        !kept.is_empty() && kept.len() < steps as usize,
        "kept {} steps",
        kept.len()
    );
    assert!(
        kept.iter().enumerate().all(|(i, s)| *s == i as i64 + 1),
        "a gap in the kept steps"
    );
}
