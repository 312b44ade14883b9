//! `[sweep]`: the pool sizes and concurrency levels `poolbench sweep`
//! measures when its flags give none (the sweep command checks its flags'
//! lists itself).

use std::collections::HashMap;

use crate::scenario::limits::{MAX_CONCURRENCY, MAX_POOL_SIZE, MAX_SWEEP_POINTS};
use crate::scenario::model::SweepGrid;
use crate::scenario::raw::{Given, Origin, RawSweep, Table};

use super::checker::Checker;

impl Checker<'_> {
    /// `[sweep]`, empty lists where it (or a key of it) is absent.
    pub(super) fn sweep(&mut self, raw: Option<Given<Table<RawSweep>>>) -> SweepGrid {
        let Some(raw) = raw else {
            return SweepGrid::default();
        };
        let raw = raw.into_inner().into_inner();
        let pool_sizes = raw
            .pool_sizes
            .map(|list| self.grid("pool_sizes", list, MAX_POOL_SIZE as i64))
            .unwrap_or_default();
        if let (Some(list), Some(rate @ Origin::File(_))) = (&raw.concurrency, &self.rate_at) {
            // A pool-size sweep at these worker counts would run open loop.
            let line = self.line_of(rate);
            self.error(
                list.origin(),
                format!(
                    "`[sweep]` `concurrency` lists closed-loop workers, which have no effect with \
                     `rate` (line {line}, open loop): remove one of them (`sweep --rates` sweeps \
                     an open-loop scenario)"
                ),
            );
        }
        let concurrency = raw
            .concurrency
            .map(|list| self.grid("concurrency", list, i64::from(MAX_CONCURRENCY)))
            .unwrap_or_default();
        SweepGrid {
            pool_sizes: pool_sizes
                .into_iter()
                .filter_map(|n| usize::try_from(n).ok())
                .collect(),
            concurrency: concurrency
                .into_iter()
                .filter_map(|n| u32::try_from(n).ok())
                .collect(),
        }
    }

    /// A `[sweep]` list: 1 to MAX_SWEEP_POINTS values, each in 1..=max,
    /// no repeats; returned in ascending order.
    fn grid(&mut self, key: &str, list: Given<Vec<Given<i64>>>, max: i64) -> Vec<i64> {
        let at = list.origin();
        let list = list.into_inner();
        if list.is_empty() {
            self.error(
                at,
                format!("`[sweep]` `{key}` is empty: list at least one value, e.g. [1, 2, 4, 8]"),
            );
            return Vec::new();
        }
        if list.len() > MAX_SWEEP_POINTS {
            self.error(
                at,
                format!(
                    "`[sweep]` `{key}` lists {} values, more than {MAX_SWEEP_POINTS}",
                    list.len()
                ),
            );
            return Vec::new();
        }
        let mut seen: HashMap<i64, Origin> = HashMap::new();
        let mut values = Vec::new();
        for item in &list {
            let Some(v) = self.int_in(key, item, 1, max) else {
                continue;
            };
            if let Some(first) = seen.get(&v) {
                let line = self.line_of(first);
                self.error(
                    item.origin(),
                    format!("`{key}` lists {v} twice (first on line {line})"),
                );
            } else {
                seen.insert(v, item.origin());
                values.push(v);
            }
        }
        values.sort_unstable();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{errors, first_error, flags, ok, BASE};

    fn with(keys: &str) -> String {
        format!("{BASE}\n[sweep]\n{keys}\n")
    }

    #[test]
    fn sweep_table_is_read_sorted() {
        let s = ok(
            &with("pool_sizes = [8, 1, 4]\nconcurrency = [32, 16]"),
            &flags(),
        );
        assert_eq!(s.sweep.pool_sizes, [1, 4, 8]);
        assert_eq!(s.sweep.concurrency, [16, 32]);
        let s = ok(BASE, &flags());
        assert!(s.sweep.pool_sizes.is_empty() && s.sweep.concurrency.is_empty());
    }

    #[test]
    fn sweep_table_errors_point_at_the_value() {
        assert_eq!(
            first_error(&with("pool_sizes = [1, 0]")),
            "t.toml:11:18: `pool_sizes` must be at least 1, found 0"
        );
        assert_eq!(
            first_error(&with("pool_sizes = []")),
            "t.toml:11:14: `[sweep]` `pool_sizes` is empty: list at least one value, e.g. [1, 2, 4, 8]"
        );
        assert_eq!(
            first_error(&with("concurrency = [4, 4]")),
            "t.toml:11:19: `concurrency` lists 4 twice (first on line 11)"
        );
        assert_eq!(
            first_error(&with("concurrency = [10001]")),
            "t.toml:11:16: `concurrency` must be at most 10000, found 10001"
        );
        let many: Vec<String> = (1..=101).map(|n| n.to_string()).collect();
        assert_eq!(
            first_error(&with(&format!("pool_sizes = [{}]", many.join(", ")))),
            "t.toml:11:14: `[sweep]` `pool_sizes` lists 101 values, more than 100"
        );
        assert!(errors(&with("pool_size = [4]"), &flags()).contains("unknown key `pool_size`"));
    }
}
