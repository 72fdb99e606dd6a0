//! Value parsers of the command-line flags.
//!
//! Every duration flag (`--query.timeout`, `--retention`,
//! `--rules.evaluation-interval`, ...) is read by [`duration`]: the
//! Prometheus duration grammar of [`tessera_query::time::parse_duration`]
//! (`1h30m`, `15d`, `2w`, `1y`, `500ms`, `0s`, `0`; units `y w d h m s ms`,
//! largest first, each at most once).

use std::time::Duration;

use tessera_query::time::{parse_duration, parse_duration_any_order, parse_seconds};

/// A duration flag in the Prometheus grammar.
///
/// Two deliberate extensions, so that every value `serve`'s duration flags
/// took before they shared this parser still means what it meant (they
/// used the HTTP API's parser): a bare number is seconds (`30`, `0.5`, as
/// Prometheus' API reads `timeout` and `step`), and the units may come in
/// any order or repeat, summed (`30m1h`). A negative duration is refused.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let ms = match parse_duration(s) {
        Ok(ms) => ms,
        Err(_) => match parse_seconds(s) {
            Some(seconds) => seconds?,
            None => parse_duration_any_order(s)?,
        },
    };
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("negative duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_durations_and_the_older_forms() {
        let ms = |s: &str| duration(s).map(|d| d.as_millis() as u64);
        // Defaults and documented values: the Prometheus grammar.
        assert_eq!(ms("15d"), Ok(15 * 86_400_000));
        assert_eq!(ms("0"), Ok(0));
        // The extensions: bare seconds, units in any order.
        assert_eq!(ms("30"), Ok(30_000));
        assert_eq!(ms("0.5"), Ok(500));
        assert_eq!(ms("30m1h"), Ok(5_400_000));
        // Refused, with the reason.
        assert_eq!(ms("-5"), Err("negative duration \"-5\"".into()));
        assert_eq!(ms("5x"), Err("not a valid duration string: \"5x\"".into()));
        assert!(ms("1.5h").is_err());
    }
}
