//! The Universal Scalability Law (Gunther) fitted to throughput against pool
//! size: X(N) = λN / (1 + σ(N−1) + κN(N−1)).
//!
//! λ is the throughput of one connection, σ the contention (the serial
//! fraction: queueing on a shared resource, Amdahl's law) and κ the
//! coherency cost (crosstalk between every pair: lock and cache traffic).
//! With κ > 0 throughput peaks at N* = √((1−σ)/κ) and then falls.
//!
//! The fit is least squares on throughput by Levenberg–Marquardt with
//! σ, κ ≥ 0 and λ > 0 kept by projection, started from Gunther's linear
//! transform (which is also reported, as a cross-check).

use serde::{Deserialize, Serialize};

/// Below this R² the fit is reported as poor.
pub const POOR_R2: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coefficients {
    pub sigma: f64,
    pub kappa: f64,
    pub lambda: f64,
}

impl Coefficients {
    /// The modelled throughput at `n`.
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// N* = √((1−σ)/κ), or None when nothing bounds throughput from above
    /// by a peak (κ = 0, or σ ≥ 1).
    pub fn peak(&self) -> Option<f64> {
        if self.kappa > 0.0 && self.sigma < 1.0 {
            Some(((1.0 - self.sigma) / self.kappa).sqrt())
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UslFit {
    pub sigma: f64,
    pub kappa: f64,
    /// Requests/s of one connection.
    pub lambda: f64,
    pub r_squared: f64,
    /// √((1−σ)/κ); null when κ = 0 (no peak: throughput approaches λ/σ).
    pub peak_pool_size: Option<f64>,
    /// The modelled throughput at the peak (or the asymptote λ/σ when there
    /// is no peak and σ > 0; null for linear scaling).
    pub peak_throughput_rps: Option<f64>,
    /// "contention" when σ > κ, "coherency" otherwise (usl4j's rule: the
    /// larger coefficient is the one that limits scaling).
    pub bound: String,
    /// σ, κ from Gunther's linear transform of the same points.
    pub linear_sigma: f64,
    pub linear_kappa: f64,
    pub points: usize,
    pub warnings: Vec<String>,
}

/// Fits the USL to `(n, throughput)` points. None with fewer than 3
/// distinct pool sizes or no positive throughput (three coefficients need
/// three points).
pub fn fit(points: &[(f64, f64)]) -> Option<UslFit> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, x)| *n >= 1.0 && x.is_finite() && *x > 0.0)
        .collect();
    let mut sizes: Vec<f64> = points.iter().map(|p| p.0).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    if sizes.len() < 3 {
        return None;
    }
    let linear = linear_transform(&points);
    // Start from the linear transform and from pure linear scaling; keep
    // the better fit (the transform can be far off when X(1) is noisy).
    let start_linear = linear;
    let start_flat = Coefficients {
        sigma: 0.0,
        kappa: 0.0,
        lambda: linear.lambda,
    };
    let a = levenberg_marquardt(&points, start_linear);
    let b = levenberg_marquardt(&points, start_flat);
    let best = if sse(&points, &a) <= sse(&points, &b) {
        a
    } else {
        b
    };
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let sst: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let r_squared = if sst > 0.0 {
        1.0 - sse(&points, &best) / sst
    } else {
        1.0
    };
    let peak = best.peak();
    let peak_throughput = match peak {
        Some(n) => Some(best.throughput(n)),
        None if best.sigma > 0.0 => Some(best.lambda / best.sigma),
        None => None,
    };
    let (lo, hi) = (sizes[0], sizes[sizes.len() - 1]);
    let mut warnings = Vec::new();
    if sizes.len() < 4 {
        warnings.push(format!(
            "only {} pool sizes: three coefficients from so few points are barely determined; \
             measure at least 4",
            sizes.len()
        ));
    }
    if r_squared < POOR_R2 {
        warnings.push(format!(
            "poor fit (R² = {r_squared:.3} < {POOR_R2}): the measurements are noisy or do not \
             follow the USL; trust the measured points, not the model"
        ));
    }
    match peak {
        Some(n) if n < lo || n > hi => warnings.push(format!(
            "the modelled peak N* = {n:.1} lies outside the measured pool sizes {lo}..{hi}: \
             it is an extrapolation"
        )),
        None => warnings.push(format!(
            "κ = 0: no peak within the model; throughput approaches {} as the pool grows",
            match peak_throughput {
                Some(x) => format!("λ/σ = {x:.0} req/s"),
                None => "no limit (linear scaling)".into(),
            }
        )),
        Some(_) => {}
    }
    Some(UslFit {
        sigma: best.sigma,
        kappa: best.kappa,
        lambda: best.lambda,
        r_squared,
        peak_pool_size: peak,
        peak_throughput_rps: peak_throughput,
        bound: if best.sigma > best.kappa {
            "contention".into()
        } else {
            "coherency".into()
        },
        linear_sigma: linear.sigma,
        linear_kappa: linear.kappa,
        points: points.len(),
        warnings,
    })
}

/// Gunther's linear transform: with relative capacity C(N) = X(N)/X(1),
/// N/C − 1 = κ(N−1)² + (σ+κ)(N−1), a parabola through the origin in
/// x = N − 1. Least squares gives a, b of a·x² + b·x; κ = a, σ = b − a.
/// X(1) is the measured point at N = 1, or, without one, the smallest pool
/// size's throughput per connection (scaling assumed linear below it).
pub fn linear_transform(points: &[(f64, f64)]) -> Coefficients {
    let at_one: Vec<f64> = points.iter().filter(|p| p.0 == 1.0).map(|p| p.1).collect();
    let lambda = if at_one.is_empty() {
        points
            .iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(1.0, |p| p.1 / p.0)
    } else {
        at_one.iter().sum::<f64>() / at_one.len() as f64
    };
    // Normal equations of y = a x² + b x (no intercept).
    let (mut s4, mut s3, mut s2, mut yx2, mut yx) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, x) in points {
        let c = x / lambda;
        let (dx, y) = (n - 1.0, n / c - 1.0);
        s4 += dx.powi(4);
        s3 += dx.powi(3);
        s2 += dx.powi(2);
        yx2 += y * dx * dx;
        yx += y * dx;
    }
    let det = s4 * s2 - s3 * s3;
    let (a, b) = if det.abs() > f64::EPSILON * s4 * s2 {
        ((yx2 * s2 - yx * s3) / det, (s4 * yx - s3 * yx2) / det)
    } else {
        (0.0, 0.0)
    };
    Coefficients {
        sigma: (b - a).max(0.0),
        kappa: a.max(0.0),
        lambda,
    }
}

fn sse(points: &[(f64, f64)], c: &Coefficients) -> f64 {
    points
        .iter()
        .map(|&(n, x)| (x - c.throughput(n)).powi(2))
        .sum()
}

/// Bounded Levenberg–Marquardt on (λ, σ, κ): Marquardt's diagonal scaling
/// (so λ in thousands and κ in thousandths move alike), each step projected
/// onto σ, κ ≥ 0, λ > 0, accepted only when it lowers the squared error.
fn levenberg_marquardt(points: &[(f64, f64)], start: Coefficients) -> Coefficients {
    let mut p = [start.lambda.max(1e-9), start.sigma, start.kappa];
    let coeffs = |p: &[f64; 3]| Coefficients {
        lambda: p[0],
        sigma: p[1],
        kappa: p[2],
    };
    let mut err = sse(points, &coeffs(&p));
    let mut mu = 1e-3;
    for _ in 0..1000 {
        // J^T J and J^T r, with r = x − model.
        let mut jtj = [[0.0; 3]; 3];
        let mut jtr = [0.0; 3];
        for &(n, x) in points {
            let d = 1.0 + p[1] * (n - 1.0) + p[2] * n * (n - 1.0);
            let model = p[0] * n / d;
            let j = [
                n / d,
                -p[0] * n * (n - 1.0) / (d * d),
                -p[0] * n * n * (n - 1.0) / (d * d),
            ];
            for r in 0..3 {
                jtr[r] += j[r] * (x - model);
                for c in 0..3 {
                    jtj[r][c] += j[r] * j[c];
                }
            }
        }
        let mut improved = false;
        while mu < 1e12 {
            let mut a = jtj;
            for (i, row) in a.iter_mut().enumerate() {
                // A zero diagonal (σ or κ has no effect) still gets damped.
                row[i] += mu * jtj[i][i].max(1e-12);
            }
            let Some(delta) = solve3(a, jtr) else {
                mu *= 10.0;
                continue;
            };
            let candidate = [
                (p[0] + delta[0]).max(1e-9),
                (p[1] + delta[1]).max(0.0),
                (p[2] + delta[2]).max(0.0),
            ];
            let candidate_err = sse(points, &coeffs(&candidate));
            if candidate_err < err {
                let change = (err - candidate_err) / err.max(f64::MIN_POSITIVE);
                p = candidate;
                err = candidate_err;
                mu = (mu / 10.0).max(1e-12);
                improved = change > 1e-15;
                break;
            }
            mu *= 10.0;
        }
        if !improved {
            break;
        }
    }
    coeffs(&p)
}

/// Solves a 3×3 system by Gaussian elimination with partial pivoting.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: f64, expected: f64, fraction: f64) -> bool {
        (actual - expected).abs() <= expected.abs() * fraction
    }

    const KNOWN: Coefficients = Coefficients {
        sigma: 0.05,
        kappa: 0.002,
        lambda: 1000.0,
    };
    const SIZES: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0];

    #[test]
    fn recovers_known_coefficients_exactly() {
        let points: Vec<(f64, f64)> = SIZES.iter().map(|&n| (n, KNOWN.throughput(n))).collect();
        let f = fit(&points).unwrap();
        assert!(within(f.sigma, 0.05, 1e-6), "{f:?}");
        assert!(within(f.kappa, 0.002, 1e-6), "{f:?}");
        assert!(within(f.lambda, 1000.0, 1e-6), "{f:?}");
        assert!(f.r_squared > 0.999_999);
        // N* = √(0.95/0.002) = 21.79; coherency is smaller than contention.
        assert!(within(f.peak_pool_size.unwrap(), 21.794, 1e-3));
        assert_eq!(f.bound, "contention");
        // Exact data: the linear transform is exact too.
        assert!(within(f.linear_sigma, 0.05, 1e-6) && within(f.linear_kappa, 0.002, 1e-6));
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    }

    #[test]
    fn recovers_known_coefficients_from_noisy_data() {
        // ±1% deterministic "noise", alternating, plus a repeat at each size.
        let points: Vec<(f64, f64)> = SIZES
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| {
                let x = KNOWN.throughput(n);
                let e = if i % 2 == 0 { 0.01 } else { -0.01 };
                [(n, x * (1.0 + e)), (n, x * (1.0 - e / 2.0))]
            })
            .collect();
        let f = fit(&points).unwrap();
        assert!(within(f.sigma, 0.05, 0.05), "{f:?}");
        assert!(within(f.kappa, 0.002, 0.05), "{f:?}");
        assert!(within(f.lambda, 1000.0, 0.05), "{f:?}");
    }

    #[test]
    fn reproduces_the_published_cisco_fit() {
        // The Cisco benchmark of Baron Schwartz, "Practical Scalability
        // Analysis with the Universal Scalability Law" (VividCortex, 2015),
        // as used by usl4j's ModelTest.java (github.com/codahale/usl4j,
        // src/test/java/com/codahale/usl4j/tests/ModelTest.java), which
        // lists the book's fitted values: σ = 0.02671591, κ = 7.690945e-4,
        // λ = 995.6486, N_max = 35, X_max = 12341.
        const CISCO: [(f64, f64); 32] = [
            (1.0, 955.16),
            (2.0, 1878.91),
            (3.0, 2688.01),
            (4.0, 3548.68),
            (5.0, 4315.54),
            (6.0, 5130.43),
            (7.0, 5931.37),
            (8.0, 6531.08),
            (9.0, 7219.8),
            (10.0, 7867.61),
            (11.0, 8278.71),
            (12.0, 8646.7),
            (13.0, 9047.84),
            (14.0, 9426.55),
            (15.0, 9645.37),
            (16.0, 9897.24),
            (17.0, 10097.6),
            (18.0, 10240.5),
            (19.0, 10532.39),
            (20.0, 10798.52),
            (21.0, 11151.43),
            (22.0, 11518.63),
            (23.0, 11806.0),
            (24.0, 12089.37),
            (25.0, 12075.41),
            (26.0, 12177.29),
            (27.0, 12211.41),
            (28.0, 12158.93),
            (29.0, 12155.27),
            (30.0, 12118.04),
            (31.0, 12140.4),
            (32.0, 12074.39),
        ];
        let f = fit(&CISCO).unwrap();
        // Within usl4j's own tolerance of the book, 0.02%.
        assert!(within(f.sigma, 0.026_715_91, 2e-4), "{f:?}");
        assert!(within(f.kappa, 7.690_945e-4, 2e-4), "{f:?}");
        assert!(within(f.lambda, 995.6486, 2e-4), "{f:?}");
        assert_eq!(f.peak_pool_size.unwrap().floor(), 35.0);
        assert!(
            within(f.peak_throughput_rps.unwrap(), 12341.0, 1e-3),
            "{f:?}"
        );
        assert_eq!(f.bound, "contention");
        // N* = 35.6 is beyond the measured 1..32.
        assert!(f.warnings.iter().any(|w| w.contains("outside")), "{f:?}");
    }

    #[test]
    fn linear_scaling_has_no_peak() {
        let points: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&n| (n, 100.0 * n))
            .collect();
        let f = fit(&points).unwrap();
        assert!(f.sigma < 1e-9 && f.kappa < 1e-9, "{f:?}");
        assert_eq!(f.peak_pool_size, None);
        assert!(f.warnings.iter().any(|w| w.contains("κ = 0")));
    }

    #[test]
    fn too_few_points_or_poor_fits_are_flagged() {
        assert!(fit(&[(1.0, 10.0), (2.0, 19.0)]).is_none());
        let f = fit(&[(1.0, 100.0), (2.0, 190.0), (4.0, 330.0)]).unwrap();
        assert!(f.warnings.iter().any(|w| w.contains("only 3 pool sizes")));
        let zigzag = [
            (1.0, 100.0),
            (2.0, 40.0),
            (3.0, 120.0),
            (4.0, 30.0),
            (5.0, 110.0),
        ];
        let f = fit(&zigzag).unwrap();
        assert!(f.warnings.iter().any(|w| w.contains("poor fit")), "{f:?}");
    }
}
