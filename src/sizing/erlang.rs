//! Erlang C: the M/M/c queue that models requests waiting for one of `c`
//! pooled connections. `plan` uses it for the acquire wait.
//!
//! Offered load `a = λ·S` (arrival rate × mean service time) is in Erlangs,
//! the mean number of busy connections. The queue is stable only while
//! `a < c`.

/// Erlang B (blocking probability) for `c` servers and offered load `a`,
/// by the recurrence B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)), which
/// never forms the factorials or powers of the closed form and so neither
/// overflows nor loses precision for large `c`.
pub fn erlang_b(c: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    b
}

/// The probability that a request has to wait (Erlang C), or `None` when
/// the queue is unstable (`a >= c`: the wait grows without bound).
pub fn p_wait(c: u32, a: f64) -> Option<f64> {
    if c == 0 || a.is_nan() || a < 0.0 || a >= f64::from(c) {
        return None;
    }
    let b = erlang_b(c, a);
    let c = f64::from(c);
    Some(c * b / (c - a * (1.0 - b)))
}

/// Mean wait in the queue, in the unit of `service`: C·S / (c − a).
pub fn mean_wait(c: u32, a: f64, service: f64) -> Option<f64> {
    p_wait(c, a).map(|pw| pw * service / (f64::from(c) - a))
}

/// P(W > t) = C·e^{−(cμ−λ)t} with μ = 1/S, i.e. C·e^{−(c−a)·t/S}.
pub fn p_wait_longer_than(c: u32, a: f64, service: f64, t: f64) -> Option<f64> {
    let pw = p_wait(c, a)?;
    Some(pw * (-(f64::from(c) - a) * t / service).exp())
}

/// The `q`-quantile of the wait (e.g. q = 0.99), in the unit of `service`:
/// 0 when fewer than 1 − q of the requests wait at all, otherwise the `t`
/// with P(W > t) = 1 − q, t = S/(c − a) · ln(C / (1 − q)).
pub fn wait_quantile(c: u32, a: f64, service: f64, q: f64) -> Option<f64> {
    let pw = p_wait(c, a)?;
    let tail = 1.0 - q;
    if pw <= tail {
        return Some(0.0);
    }
    Some(service / (f64::from(c) - a) * (pw / tail).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn textbook_values() {
        // c = 12 agents, a = 10 Erlangs: P(wait) = 0.4494 (the call-centre
        // example of every Erlang C calculator; ≈ 0.45).
        let pw = p_wait(12, 10.0).unwrap();
        assert!(close(pw, 0.449_388, 1e-5), "{pw}");
        // M/M/1: P(wait) = ρ.
        assert!(close(p_wait(1, 0.5).unwrap(), 0.5, 1e-12));
        // M/M/2 at ρ = 0.5: 2ρ²/(1+ρ) = 1/3.
        assert!(close(p_wait(2, 1.0).unwrap(), 1.0 / 3.0, 1e-12));
        // c = 10, a = 8: 0.4092.
        assert!(close(p_wait(10, 8.0).unwrap(), 0.409_18, 1e-4));
        // Erlang B, c = 1, a = 1: 1/2; c = 2, a = 1: 1/5.
        assert!(close(erlang_b(1, 1.0), 0.5, 1e-12));
        assert!(close(erlang_b(2, 1.0), 0.2, 1e-12));
    }

    #[test]
    fn large_pools_stay_finite() {
        let pw = p_wait(1000, 950.0).unwrap();
        assert!(pw.is_finite() && pw > 0.0 && pw < 1.0, "{pw}");
    }

    #[test]
    fn unstable_or_empty_queues_have_no_answer() {
        assert_eq!(p_wait(12, 12.0), None);
        assert_eq!(p_wait(12, 13.0), None);
        assert_eq!(p_wait(0, 0.0), None);
        assert_eq!(p_wait(4, f64::NAN), None);
        assert_eq!(p_wait(4, 0.0), Some(0.0));
    }

    #[test]
    fn waits() {
        // M/M/1, ρ = 0.5, S = 1: Wq = ρ/(1−ρ)·S = 1.
        assert!(close(mean_wait(1, 0.5, 1.0).unwrap(), 1.0, 1e-12));
        // P(W > 0) is P(wait); the tail decays at rate (c − a)/S.
        let s = 2.0;
        let p0 = p_wait_longer_than(12, 10.0, s, 0.0).unwrap();
        assert!(close(p0, p_wait(12, 10.0).unwrap(), 1e-12));
        let p1 = p_wait_longer_than(12, 10.0, s, 1.0).unwrap();
        assert!(close(p1, p0 * (-1.0f64).exp(), 1e-12));
        // The quantile inverts the tail.
        let t = wait_quantile(12, 10.0, s, 0.99).unwrap();
        assert!(close(
            p_wait_longer_than(12, 10.0, s, t).unwrap(),
            0.01,
            1e-12
        ));
        // Few requests wait at all: the p99 wait is 0.
        assert_eq!(wait_quantile(12, 2.0, s, 0.99), Some(0.0));
    }
}
