//! An HA pair of senders behind `tessera query --query.replica-label`, with
//! real processes: two `tessera serve` stores hold the same counter under
//! `replica="a"` and `replica="b"`, as two Prometheus scraping one target
//! would write it: b scrapes 1.3 s after a and reads a little less (a
//! lagging exporter copy), and a stops for 2 minutes. `rate()` and
//! `increase()` over the tier then show no gap and no counter-reset
//! artefact where the tier switches from a to b, while the counter read as
//! a plain selector is b's own values.

mod common;

use common::*;

const STEP: i64 = 15_000;
/// The counter's true increase per second.
const PER_SEC: f64 = 10.0;

#[test]
fn rate_over_an_ha_pair_shows_no_gap_and_no_reset_across_a_stopped_sender() {
    let end = (now_ms() - 10_000) / STEP * STEP;
    let t0 = end - 80 * STEP;
    let value = |t: i64| 1000.0 + PER_SEC * (t - t0) as f64 / 1000.0;
    let copy = |replica: &str, samples: Vec<(i64, f64)>| {
        series(
            &[
                ("__name__", "gpu_energy_joules_total"),
                ("instance", "node-1:9400"),
                ("job", "dcgm"),
                ("replica", replica),
            ],
            &samples,
        )
    };
    // a: every 15 s from t0, stopped from scrape 40 to 47 (2 minutes).
    let a: Vec<(i64, f64)> = (0..=80)
        .filter(|i| !(40..48).contains(i))
        .map(|i| (t0 + i * STEP, value(t0 + i * STEP)))
        .collect();
    // b: started a minute later, 1.3 s behind a, 50 lower.
    let b: Vec<(i64, f64)> = (4..=80)
        .map(|i| {
            let t = t0 + i * STEP + 1_300;
            (t, value(t) - 50.0)
        })
        .collect();
    let (sa, sb) = (Tessera::start(&[]), Tessera::start(&[]));
    assert_eq!(sa.write(&request(vec![copy("a", a)])).0, 204);
    assert_eq!(sb.write(&request(vec![copy("b", b)])).0, 204);
    let (ua, ub) = (
        format!("http://127.0.0.1:{}", sa.port),
        format!("http://127.0.0.1:{}", sb.port),
    );
    let tier = Tessera::start_tier(&[
        "--store",
        &ua,
        "--store",
        &ub,
        "--query.replica-label",
        "replica",
    ]);

    // rate over 1m windows at every 15 s step from when b started to the
    // end, across a's stop and the switch to b: one series (the copies
    // deduplicated), a point at every step, each the true rate.
    let (start, stop) = (t0 + 6 * STEP, end);
    let q = |expr: &str| {
        format!(
            "/api/v1/query_range?query={expr}&start={}&end={}&step=15",
            start / 1000,
            stop / 1000
        )
    };
    let data = tier.data(&q("rate(gpu_energy_joules_total[1m])"));
    let result = data["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{data}");
    assert!(result[0]["metric"].get("replica").is_none());
    let values = result[0]["values"].as_array().unwrap();
    let steps = ((stop - start) / STEP + 1) as usize;
    assert_eq!(values.len(), steps, "a gap: {data}");
    // A reset read into the switch would add the whole counter (over
    // 5,000) to a window: a rate of 100+. The sample 1.3 s after a's last
    // one leaves only rate()'s own extrapolation error (about 0.7x for the
    // windows holding both).
    for v in values {
        let r: f64 = v[1].as_str().unwrap().parse().unwrap();
        assert!(
            (0.5 * PER_SEC..1.2 * PER_SEC).contains(&r),
            "rate {r} at {}: {data}",
            v[0]
        );
    }
    let exact = values
        .iter()
        .filter(|v| (v[1].as_str().unwrap().parse::<f64>().unwrap() - PER_SEC).abs() < 1e-6)
        .count();
    assert!(exact >= steps - 4, "{exact} of {steps} exact: {data}");
    // increase over the whole span is the true increase (within the
    // extrapolation to the window's edges).
    let instant = |expr: &str, t: i64| {
        let d = tier.data(&format!("/api/v1/query?query={expr}&time={t}"));
        let v = d["result"][0]["value"][1].as_str().map(str::parse::<f64>);
        (v.and_then(Result::ok), d)
    };
    let (inc, d) = instant("increase(gpu_energy_joules_total[15m])", stop / 1000);
    let inc = inc.unwrap_or_else(|| panic!("{d}"));
    assert!(
        (inc - PER_SEC * 900.0).abs() < 0.01 * PER_SEC * 900.0,
        "{d}"
    );

    // Read as a plain selector (a gauge, for all the tier knows), the
    // copy taken during a's stop is b's own values, unshifted.
    let during = (t0 + 44 * STEP + 5_000) / 1000;
    let (v, d) = instant("gpu_energy_joules_total", during);
    assert_eq!(v, Some(value(t0 + 44 * STEP + 1_300) - 50.0), "{d}");
}
