//! `[network]`: the emulated link's `rtt` and `jitter`, and `--rtt`, which
//! replaces the file's RTT (or adds the table): the file's jitter is then
//! capped at half the flag's RTT rather than refused, since the user chose
//! the jitter for another RTT.

use std::time::Duration;

use crate::scenario::model::NetworkSettings;
use crate::scenario::raw::{Given, Origin, RawNetwork, Table};

use super::checker::Checker;

impl Checker<'_> {
    pub(super) fn network(&mut self, raw: Given<Table<RawNetwork>>) -> Option<NetworkSettings> {
        let at = raw.origin();
        let raw = raw.into_inner().into_inner();
        let Some(rtt_value) = &raw.rtt else {
            self.error(
                at,
                "`[network]` needs `rtt`, the round-trip time to add, e.g. rtt = \"20ms\"",
            );
            return None;
        };
        let rtt = self.duration_in(
            "rtt",
            rtt_value,
            Duration::ZERO,
            NetworkSettings::MAX_RTT,
            "",
        )?;
        let Some(j) = &raw.jitter else {
            return Some(NetworkSettings::at(rtt, Duration::ZERO));
        };
        let jitter = self.duration("jitter", j)?;
        if jitter > rtt / 2 && matches!(rtt_value.origin(), Origin::File(_)) {
            self.error(
                j.origin(),
                format!(
                    "`jitter` moves each flight by up to ± its value, so it must be at most half \
                     the rtt ({}), found {}",
                    humantime::format_duration(rtt / 2),
                    j.get_ref()
                ),
            );
            return None;
        }
        Some(NetworkSettings::at(rtt, jitter))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{errors, first_error, flags, ok, BASE};
    use crate::scenario::Overrides;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rtt(n: u64) -> Overrides {
        Overrides {
            rtt: Some(ms(n)),
            ..flags()
        }
    }

    fn link(text: &str, o: &Overrides) -> Option<(Duration, Duration)> {
        ok(text, o).network.map(|n| (n.rtt, n.jitter))
    }

    #[test]
    fn the_file_s_link_is_read_and_checked_at_its_place() {
        let with = |keys: &str| format!("{BASE}\n[network]\n{keys}\n");
        assert_eq!(link(BASE, &flags()), None);
        assert_eq!(
            link(&with("rtt = \"20ms\"\njitter = \"1ms\""), &flags()),
            Some((ms(20), ms(1)))
        );
        assert_eq!(
            link(&with("rtt = \"10s\""), &flags()),
            Some((ms(10_000), ms(0)))
        );
        assert_eq!(link(&with("rtt = \"0ms\""), &flags()), Some((ms(0), ms(0))));
        assert_eq!(
            first_error(&with("jitter = \"1ms\"")),
            "t.toml:10:1: `[network]` needs `rtt`, the round-trip time to add, e.g. rtt = \"20ms\""
        );
        assert_eq!(
            first_error(&with("rtt = \"11s\"")),
            "t.toml:11:7: `rtt` must be at most 10s, found 11s"
        );
        assert!(first_error(&with("rtt = \"20\""))
            .starts_with("t.toml:11:7: `rtt` = \"20\" is not a duration"));
        assert_eq!(
            first_error(&with("rtt = \"10ms\"\njitter = \"6ms\"")),
            "t.toml:12:10: `jitter` moves each flight by up to ± its value, so it must be \
             at most half the rtt (5ms), found 6ms"
        );
    }

    #[test]
    fn rtt_replaces_the_file_s_and_caps_its_jitter() {
        let file = format!("{BASE}\n[network]\nrtt = \"20ms\"\njitter = \"4ms\"\n");
        assert_eq!(link(&file, &rtt(50)), Some((ms(50), ms(4))));
        assert_eq!(link(&file, &rtt(2)), Some((ms(2), ms(1))));
        // Without [network], --rtt adds the link.
        assert_eq!(link(BASE, &rtt(0)), Some((ms(0), ms(0))));
        // A [network] that lacks its rtt takes the flag's.
        let jitter_only = format!("{BASE}\n[network]\njitter = \"1ms\"\n");
        assert_eq!(link(&jitter_only, &rtt(10)), Some((ms(10), ms(1))));
        assert_eq!(
            errors(&file, &rtt(20_000)),
            "--rtt must be at most 10s, not 20s"
        );
        assert_eq!(
            errors(BASE, &rtt(10_001)),
            "--rtt must be at most 10s, not 10s 1ms"
        );
    }
}
