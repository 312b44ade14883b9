//! A second of the timeline, kept small. A latency histogram's counts
//! take 16–90 KB however few requests it holds; a run keeps one per phase
//! for every second it measured, so a long run would fill the memory. Once
//! a second is over, the collector packs its histograms into HdrHistogram's
//! V2+DEFLATE encoding (a few hundred bytes to a few KB, and what the
//! timeline's `hdr` holds anyway) and unpacks them only to read them or to
//! add a late interval. An encoded histogram ([`Hdr`]) is written once to
//! the command's spill file (`spill.rs`), or kept in memory without one,
//! and shared, not copied: the round's second, the report's timeline row
//! and the exporters that write it read the same bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::display::Base64Display;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::spill::{self, Spilled};
use super::{Phase, PhaseHistograms};

/// One histogram in HdrHistogram's V2+DEFLATE encoding, written as base64
/// text (a report's `hdr`). Packed by the collector it is the bytes in the
/// spill file (or in memory), shared by every reader and turned into text
/// only as it is written; read from a report it is the file's text, kept
/// as it was (a broken one is only an error where it is decoded, which
/// names the file and the second).
#[derive(Clone)]
pub struct Hdr(Repr);

#[derive(Clone)]
enum Repr {
    Spilled(Spilled),
    Bytes(Arc<[u8]>),
    Text(String),
}

impl Hdr {
    /// The encoding of `h`, or None when hdrhistogram cannot encode it.
    pub fn of(h: &Histogram<u64>) -> Option<Hdr> {
        let mut bytes = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a histogram that cannot
        // be encoded would be a bug in hdrhistogram.
        V2DeflateSerializer::new().serialize(h, &mut bytes).ok()?;
        Some(Hdr(match spill::put(&bytes) {
            Some(at) => Repr::Spilled(at),
            None => Repr::Bytes(bytes.into()),
        }))
    }

    /// A report's base64 text, as given.
    pub fn text(text: String) -> Hdr {
        Hdr(Repr::Text(text))
    }

    /// The histogram, with fixed bounds as encoded.
    pub fn decode(&self) -> anyhow::Result<Histogram<u64>> {
        let deserialize = |bytes: &[u8]| {
            Deserializer::new()
                .deserialize(&mut &bytes[..])
                .map_err(|e| anyhow::anyhow!("invalid histogram: {e:?}"))
        };
        match &self.0 {
            Repr::Spilled(at) => deserialize(&spill::get(*at)?),
            Repr::Bytes(bytes) => deserialize(bytes),
            Repr::Text(text) => super::decode_histogram(text),
        }
    }
}

/// The base64 text, written as it is read (no copy of the whole text).
impl fmt::Display for Hdr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base64 = |bytes: &[u8], f: &mut fmt::Formatter<'_>| {
            Base64Display::new(bytes, &base64::engine::general_purpose::STANDARD).fmt(f)
        };
        match &self.0 {
            // An unreadable spill file fails the write of the report.
            Repr::Spilled(at) => base64(&spill::get(*at).map_err(|_| fmt::Error)?, f),
            Repr::Bytes(bytes) => base64(bytes, f),
            Repr::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for Hdr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hdr({self})")
    }
}

impl Serialize for Hdr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hdr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Hdr::text)
    }
}

/// The phases of one second, each V2+DEFLATE-encoded.
#[derive(Debug, Clone, Default)]
pub struct PackedPhases(Vec<(Phase, Hdr)>);

impl PackedPhases {
    pub fn pack(phases: &PhaseHistograms) -> PackedPhases {
        PackedPhases(
            Phase::ALL
                .iter()
                .filter_map(|p| Some((*p, Hdr::of(phases.get(*p)?)?)))
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
        let (_, hdr) = self.0.iter().find(|(p, _)| *p == phase)?;
        let mut h = hdr.decode().ok()?;
        // Decoded histograms have fixed bounds; later intervals may need more.
        h.auto(true);
        Some(h)
    }

    /// The number of samples of `phase`.
    pub fn count(&self, phase: Phase) -> u64 {
        self.get(phase).map_or(0, |h| h.len())
    }

    /// Each phase's histogram as the timeline's `hdr` holds it: the same
    /// bytes, shared.
    pub fn encode(&self) -> BTreeMap<String, Hdr> {
        self.0
            .iter()
            .map(|(p, hdr)| (p.as_str().to_string(), hdr.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PhaseTimings;

    #[test]
    fn packing_keeps_every_count_and_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        crate::metrics::spill::into(dir.path());
        let mut phases = PhaseHistograms::default();
        for v in 1..=5000u64 {
            let mut t = PhaseTimings::default();
            t.set(Phase::Query, v * 3);
            t.set(Phase::Total, v * 200);
            phases.record(&t);
        }
        let packed = PackedPhases::pack(&phases);
        // Written to the spill file, not kept in memory.
        assert!(packed
            .0
            .iter()
            .all(|(_, hdr)| matches!(hdr.0, Repr::Spilled(_))));
        // Base64 text, a third longer than the bytes kept.
        let bytes: usize = packed.0.iter().map(|(_, b)| b.to_string().len()).sum();
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
        assert_eq!(
            encoded["total"].to_string(),
            crate::metrics::encode_histogram(original)
        );
        // Serialised as the text a report holds, and read back as it.
        let json = serde_json::to_string(&encoded).unwrap();
        let back: BTreeMap<String, Hdr> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back["total"].decode().unwrap(), *original);
    }
}
