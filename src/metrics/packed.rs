//! A second of the timeline, kept small. A latency histogram's counts
//! take 16–90 KB however few requests it holds; a run keeps one per phase
//! for every second it measured, so a long run would fill the memory. Once
//! a second is over, the collector packs its histograms into HdrHistogram's
//! V2+DEFLATE encoding (a few hundred bytes to a few KB, and what the
//! timeline's `hdr` holds anyway) and unpacks them only to read them or to
//! add a late interval.

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::{Phase, PhaseHistograms};

/// The phases of one second, each V2+DEFLATE-encoded.
#[derive(Debug, Clone, Default)]
pub struct PackedPhases(Vec<(Phase, Vec<u8>)>);

impl PackedPhases {
    pub fn pack(phases: &PhaseHistograms) -> PackedPhases {
        PackedPhases(
            Phase::ALL
                .iter()
                .filter_map(|p| {
                    let h = phases.get(*p)?;
                    let mut bytes = Vec::new();
                    // Encoding into a Vec cannot fail on I/O; a histogram
                    // that cannot be encoded would be a bug in hdrhistogram.
                    V2DeflateSerializer::new().serialize(h, &mut bytes).ok()?;
                    Some((*p, bytes))
                })
                .collect(),
        )
    }

    pub fn unpack(&self) -> PhaseHistograms {
        let mut phases = PhaseHistograms::default();
        for (phase, _) in &self.0 {
            if let Some(h) = self.get(*phase) {
                phases.insert(*phase, h);
            }
        }
        phases
    }

    /// The phase's histogram, or None when nothing was recorded in it.
    pub fn get(&self, phase: Phase) -> Option<Histogram<u64>> {
        let (_, bytes) = self.0.iter().find(|(p, _)| *p == phase)?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .ok()?;
        // Decoded histograms have fixed bounds; later intervals may need more.
        h.auto(true);
        Some(h)
    }

    /// The number of samples of `phase`.
    pub fn count(&self, phase: Phase) -> u64 {
        self.get(phase).map_or(0, |h| h.len())
    }

    /// Each phase's histogram as the timeline's `hdr` holds it.
    pub fn encode(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(p, bytes)| {
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                (p.as_str().to_string(), text)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PhaseTimings;

    #[test]
    fn packing_keeps_every_count_and_stays_small() {
        let mut phases = PhaseHistograms::default();
        for v in 1..=5000u64 {
            let mut t = PhaseTimings::default();
            t.set(Phase::Query, v * 3);
            t.set(Phase::Total, v * 200);
            phases.record(&t);
        }
        let packed = PackedPhases::pack(&phases);
        let bytes: usize = packed.0.iter().map(|(_, b)| b.len()).sum();
        let unpacked: usize = [Phase::Query, Phase::Total]
            .map(|p| phases.get(p).unwrap().distinct_values() * 8)
            .iter()
            .sum();
        assert!(
            bytes * 8 < unpacked,
            "{bytes} bytes packed, {unpacked} unpacked"
        );
        let total = packed.get(Phase::Total).unwrap();
        let original = phases.get(Phase::Total).unwrap();
        assert_eq!(total.len(), 5000);
        assert_eq!(
            total.value_at_quantile(0.99),
            original.value_at_quantile(0.99)
        );
        assert!(packed.get(Phase::Acquire).is_none());
        // A late interval with larger values still adds up after unpacking.
        let mut back = packed.unpack();
        let mut late = PhaseHistograms::default();
        let mut t = PhaseTimings::default();
        t.set(Phase::Total, 50_000_000);
        late.record(&t);
        back.merge(&late);
        assert_eq!(back.count(Phase::Total), 5001);
        assert_eq!(back.get(Phase::Total).unwrap().max(), 50_003_967);
        let encoded = packed.encode();
        assert_eq!(encoded.keys().collect::<Vec<_>>(), ["query", "total"]);
        assert_eq!(encoded["total"], crate::metrics::encode_histogram(original));
    }
}
