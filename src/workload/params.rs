//! Seeded parameter generators and the values they produce (the backend's
//! [`Value`], which each engine binds to its parameter's type).

use crate::scenario::{Literal, Param};

pub use crate::backend::Value;
pub use crate::rng::Rng;

/// A scenario's literal as the value it binds.
fn literal(l: &Literal) -> Value {
    match l {
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Text(s) => Value::Text(s.clone()),
    }
}

/// A parameter generator ready to draw: zipf's normalisation is computed once.
#[derive(Debug, Clone)]
pub enum Generator {
    Int { lo: i64, span: u64 },
    Zipf(Zipf),
    Text { len: usize },
    Choice(Vec<Value>),
    Fixed(Value),
}

impl Generator {
    pub fn new(param: &Param) -> Generator {
        match param {
            Param::Int { lo, hi } => Generator::Int {
                lo: *lo,
                // hi >= lo is checked by the scenario; the span of the full
                // i64 range wraps to 0, which `draw` treats as "any u64".
                span: (*hi as i128 - *lo as i128 + 1) as u64,
            },
            Param::Zipf { max, s } => Generator::Zipf(Zipf::new(*max, *s)),
            Param::Text { len } => Generator::Text { len: *len },
            Param::Choice(items) => Generator::Choice(items.iter().map(literal).collect()),
            Param::Literal(l) => Generator::Fixed(literal(l)),
        }
    }

    /// The lowest and highest integer it can draw (None when it draws no
    /// integer).
    pub fn int_range(&self) -> Option<(i64, i64)> {
        match self {
            Generator::Int { lo, span } => {
                // span 0 stands for the whole i64 range (see `new`).
                let hi = if *span == 0 {
                    i64::MAX
                } else {
                    i64::try_from(i128::from(*lo) + i128::from(*span) - 1).unwrap_or(i64::MAX)
                };
                Some((*lo, hi))
            }
            Generator::Zipf(z) => Some((1, z.n as i64)),
            Generator::Choice(items) => {
                let ints = items.iter().filter_map(|v| match v {
                    Value::Int(i) => Some(*i),
                    _ => None,
                });
                let (lo, hi) =
                    ints.fold((i64::MAX, i64::MIN), |(lo, hi), i| (lo.min(i), hi.max(i)));
                (lo <= hi).then_some((lo, hi))
            }
            Generator::Fixed(Value::Int(i)) => Some((*i, *i)),
            Generator::Fixed(_) | Generator::Text { .. } => None,
        }
    }

    pub fn draw(&self, rng: &mut Rng) -> Value {
        match self {
            Generator::Int { lo, span } => {
                let offset = if *span == 0 {
                    rng.next_u64()
                } else {
                    rng.below(*span)
                };
                Value::Int(lo.wrapping_add(offset as i64))
            }
            Generator::Zipf(z) => Value::Int(z.sample(rng) as i64),
            Generator::Text { len } => {
                let text = (0..*len)
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect();
                Value::Text(text)
            }
            Generator::Choice(items) => items[rng.below(items.len() as u64) as usize].clone(),
            Generator::Fixed(v) => v.clone(),
        }
    }
}

/// Zipf over 1..=n with exponent s, by rejection-inversion (Hörmann &
/// Derflinger 1996), as in Apache Commons RNG: O(1) per draw for any n.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let n = n.max(1) as f64;
        let mut z = Zipf {
            n,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h(1.5) - 1.0;
        z.h_n = z.h(n + 0.5);
        z.cut = 2.0 - z.h_inv(z.h(2.5) - (2.0f64).powf(-s));
        z
    }

    fn h(&self, x: f64) -> f64 {
        helper1((1.0 - self.s) * x.ln()) * x.ln()
    }

    fn h_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper2(t) * x).exp()
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_n + rng.next_f64() * (self.h_x1 - self.h_n);
            let x = self.h_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h(k + 0.5) - k.powf(-self.s) {
                return k as u64;
            }
        }
    }
}

/// (e^x − 1)/x, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// ln(1 + x)/x, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::for_worker(42, 3);
        let mut b = Rng::for_worker(42, 3);
        let mut c = Rng::for_worker(42, 4);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn int_stays_in_range_and_covers_it() {
        let g = Generator::new(&Param::Int { lo: 5, hi: 9 });
        let mut rng = Rng::new(1);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let Value::Int(v) = g.draw(&mut rng) else {
                panic!()
            };
            assert!((5..=9).contains(&v));
            seen[(v - 5) as usize] += 1;
        }
        // Uniform: each value near 2000.
        assert!(seen.iter().all(|&n| (1800..2200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn full_i64_range_does_not_overflow() {
        let g = Generator::new(&Param::Int {
            lo: i64::MIN,
            hi: i64::MAX,
        });
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            g.draw(&mut rng);
        }
    }

    #[test]
    fn zipf_matches_its_distribution() {
        // s = 1, n = 10: P(1) = 1/H(10) ≈ 0.3414, P(2) ≈ 0.1707.
        let z = Zipf::new(10, 1.0);
        let mut rng = Rng::new(3);
        let n = 200_000;
        let mut counts = [0u32; 11];
        for _ in 0..n {
            let k = z.sample(&mut rng);
            assert!((1..=10).contains(&k));
            counts[k as usize] += 1;
        }
        let p1 = f64::from(counts[1]) / n as f64;
        let p2 = f64::from(counts[2]) / n as f64;
        assert!((p1 - 0.3414).abs() < 0.005, "p1 = {p1}");
        assert!((p2 - 0.1707).abs() < 0.005, "p2 = {p2}");
    }

    #[test]
    fn text_has_the_asked_length() {
        let g = Generator::new(&Param::Text { len: 12 });
        let Value::Text(s) = g.draw(&mut Rng::new(1)) else {
            panic!()
        };
        assert_eq!(s.len(), 12);
        assert!(s.chars().all(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn integer_ranges_are_known_before_drawing() {
        let range = |p: Param| Generator::new(&p).int_range();
        assert_eq!(range(Param::Int { lo: -5, hi: 70_000 }), Some((-5, 70_000)));
        assert_eq!(
            range(Param::Int {
                lo: i64::MIN,
                hi: i64::MAX
            }),
            Some((i64::MIN, i64::MAX))
        );
        assert_eq!(
            range(Param::Zipf {
                max: 40_000,
                s: 1.1
            }),
            Some((1, 40_000))
        );
        assert_eq!(
            range(Param::Choice(vec![
                Literal::Int(3),
                Literal::Text("x".into()),
                Literal::Int(-9)
            ])),
            Some((-9, 3))
        );
        assert_eq!(range(Param::Text { len: 3 }), None);
    }
}
