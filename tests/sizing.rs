//! `poolbench sweep` and `poolbench plan` as a user runs them: the built
//! binary against the embedded server, the files it writes, and what plan
//! prints from them; and the refusals (exit 2) with their messages.

mod common;
use common::{poolbench_blocking, read_json};

#[test]
fn sweep_on_the_embedded_server_then_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let out_s = out.to_str().unwrap();
    let run = poolbench_blocking([
        "sweep",
        "scenarios/select1.toml",
        "--pool-sizes",
        "1,2,4",
        "--concurrency",
        "4",
        "--duration",
        "1500ms",
        "--warmup",
        "300ms",
        "--out",
        out_s,
        "--quiet",
    ]);
    let (stdout, stderr) = (common::stdout(&run), common::stderr(&run));
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    // The table: a row per pool size, the knee marked, the USL fit.
    assert!(stdout.contains("◀ knee"), "{stdout}");
    assert!(stdout.contains("USL fit"), "{stdout}");
    assert!(stdout.contains("fresh"), "{stdout}");

    let sweep = read_json(&out.join("sweep.json"));
    assert_eq!(sweep["schema_version"], 1);
    assert_eq!(sweep["kind"], "sweep");
    assert_eq!(sweep["interrupted"], false);
    assert_eq!(sweep["scenario"]["name"], "select1");
    assert_eq!(sweep["scenario"]["sha256"].as_str().unwrap().len(), 64);
    let points = sweep["points"].as_array().unwrap();
    let sizes: Vec<u64> = points
        .iter()
        .map(|p| p["pool_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 2, 4]);
    for p in points {
        assert_eq!(p["concurrency"], 4);
        assert!(p["requests"].as_u64().unwrap() > 0, "{p}");
        assert!(p["throughput_rps"].as_f64().unwrap() > 0.0, "{p}");
        let q = &p["query"];
        assert!(q["p50_us"].as_u64().unwrap() <= q["p99_us"].as_u64().unwrap());
        assert!(p["total"]["p99_us"].as_u64().unwrap() >= q["p50_us"].as_u64().unwrap());
        assert!(p["service_time_mean_us"].as_f64().unwrap() > 0.0);
    }
    // A pool of 1 behind 4 workers makes them wait; a pool of 4 hardly.
    let acquire_p50 = |i: usize| points[i]["acquire"]["p50_us"].as_u64().unwrap();
    assert!(acquire_p50(0) > acquire_p50(2), "{points:?}");
    let fresh = &sweep["fresh"][0];
    assert!(fresh["connect"]["p50_us"].as_u64().unwrap() > 0, "{fresh}");
    let analysis = &sweep["analysis"][0];
    assert!(analysis["usl"]["r_squared"].is_number(), "{analysis}");
    let knee = analysis["knee_pool_size"].as_u64().unwrap();
    assert!(sizes.contains(&knee));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("scenario,concurrency,pool_size,"));

    // Plan from it: a modest target any server meets. The sweep is the
    // prior (its Erlang C plan printed first); the answer is measured.
    let short = ["--duration", "500ms", "--warmup", "200ms"];
    let plan = poolbench_blocking(
        [
            "plan",
            "--sweep",
            out_s,
            "--rps",
            "100",
            "--p99",
            "100ms",
            "--instances",
            "2",
        ]
        .into_iter()
        .chain(short),
    );
    let (stdout, stderr) = (common::stdout(&plan), common::stderr(&plan));
    assert_eq!(plan.status.code(), Some(0), "{stdout}\n{stderr}");
    for name in [
        "Erlang C",
        "connection budget",
        "break-even",
        "M/G/c simulation proposes",
        "measured: max_size = ",
        "max_connections=",
        "min_connections=",
        "maximumPoolSize=",
        "minimumIdle=",
        "max_overflow=",
    ] {
        assert!(stdout.contains(name), "no {name} in:\n{stdout}");
    }
    assert!(!stdout.contains("Verified"), "{stdout}");

    // More traffic than the server can reach: exit 1 naming the rate it
    // reached, never a recommendation.
    let plan = poolbench_blocking(
        [
            "plan", "--sweep", out_s, "--rps", "300000", "--p99", "1s", "--format", "json",
        ]
        .into_iter()
        .chain(short),
    );
    assert_eq!(plan.status.code(), Some(1), "{}", common::stderr(&plan));
    let p: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(p["recommended"], serde_json::Value::Null, "{p}");
    assert_eq!(p["met"], false);
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no pool size can"),
        "{reason}\n{}",
        common::stderr(&plan)
    );
    assert!(reason.contains("req/s"), "{reason}");
    assert!(common::stderr(&plan).contains(reason));

    // A budget too small for one connection per instance: exit 1, with
    // PgBouncer named.
    let plan = poolbench_blocking(
        [
            "plan",
            "--sweep",
            out_s,
            "--rps",
            "100",
            "--p99",
            "100ms",
            "--instances",
            "50",
            "--max-connections",
            "20",
        ]
        .into_iter()
        .chain(short),
    );
    let stderr = common::stderr(&plan);
    assert_eq!(plan.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PgBouncer in transaction pooling"),
        "{stderr}"
    );

    // Sweeping into the same directory again is refused.
    let again = poolbench_blocking([
        "sweep",
        "scenarios/select1.toml",
        "--pool-sizes",
        "1",
        "--out",
        out_s,
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(common::stderr(&again).contains("already exists"));
}

#[test]
fn malformed_pool_sizes_exit_2() {
    for bad in ["1,x", "0", "1,,2", "-1", "2.5"] {
        let flag = format!("--pool-sizes={bad}");
        let out = poolbench_blocking(["sweep", "scenarios/select1.toml", &flag]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad}: {}",
            common::stderr(&out)
        );
        assert!(
            common::stderr(&out).contains("--pool-sizes"),
            "{bad}: {}",
            common::stderr(&out)
        );
    }
}

#[test]
fn sweep_refuses_what_it_cannot_run() {
    // No pool sizes anywhere.
    let out = poolbench_blocking(["sweep", "scenarios/select1.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("no pool sizes to sweep"),
        "{}",
        common::stderr(&out)
    );

    // No pool strategy to use as the template.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh-only.toml");
    std::fs::write(
        &path,
        "[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n\n[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    )
    .unwrap();
    let out = poolbench_blocking(["sweep", path.to_str().unwrap(), "--pool-sizes", "1,2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("no kind = \"pool\" strategy"),
        "{}",
        common::stderr(&out)
    );

    let out = poolbench_blocking([
        "sweep",
        "scenarios/select1.toml",
        "--pool-sizes",
        "1",
        "--strategy",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("--strategy nope"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn plan_refuses_what_is_not_a_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    let out = poolbench_blocking([
        "plan",
        "--sweep",
        missing.to_str().unwrap(),
        "--rps",
        "10",
        "--p99",
        "5ms",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("cannot read the sweep"));

    let report = dir.path().join("report.json");
    std::fs::write(&report, r#"{"schema_version": 1, "strategies": []}"#).unwrap();
    let out = poolbench_blocking([
        "plan",
        "--sweep",
        report.to_str().unwrap(),
        "--rps",
        "10",
        "--p99",
        "5ms",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("not a sweep.json"),
        "{}",
        common::stderr(&out)
    );

    let out = poolbench_blocking([
        "plan",
        "--sweep",
        report.to_str().unwrap(),
        "--rps",
        "10",
        "--p99",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("--p99"),
        "{}",
        common::stderr(&out)
    );
}

/// On a service time Little's law fixes (pg_sleep(10 ms) per request,
/// 10–12.5 ms with the round trip, on a loaded machine), the search lands
/// on the measured minimum: at 130 req/s, λS = 1.3–1.6 connections are
/// busy on average, so 1 connection cannot keep up (its queue grows
/// without bound, p99 in the hundreds of ms) and 2 serve it at ρ ≤ 0.82
/// (p99 tens of ms). Each decisive size is measured over 3 rounds; the
/// JSON carries every point.
#[test]
fn the_search_lands_on_the_minimum_little_s_law_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    let plan = poolbench_blocking([
        "plan",
        "scenarios/plan-sleep.toml",
        "--rps",
        "130",
        "--p99",
        "150ms",
        "--duration",
        "1500ms",
        "--warmup",
        "500ms",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = common::stderr(&plan);
    assert_eq!(plan.status.code(), Some(0), "{stderr}");
    let p: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(p["schema_version"], 2);
    assert_eq!(p["met"], true, "{p}");
    assert_eq!(p["recommended"]["max_size"], 2, "{p}");
    assert_eq!(p["target"]["rps"], 130.0);
    assert_eq!(p["target"]["p99_ms"], 150.0);
    assert_eq!(p["target"]["instances"], 1);
    let points = p["points"].as_array().unwrap();
    let at = |size: u64| {
        points
            .iter()
            .find(|x| x["pool_size"] == size)
            .unwrap_or_else(|| panic!("pool {size} not measured: {p}"))
    };
    let (two, one) = (at(2), at(1));
    assert_eq!(two["met"], true, "{two}");
    assert_eq!(one["met"], false, "{one}");
    for point in [two, one] {
        assert_eq!(point["rate"], 130.0);
        let rounds = point["rounds"].as_array().unwrap();
        // 3, or more when they disagreed (up to 9): the count that met
        // agrees with the verdict.
        assert!((3..=9).contains(&rounds.len()), "{point}");
        let met = point["rounds_met"].as_u64().unwrap() as usize;
        assert_eq!(point["met"], met * 2 > rounds.len(), "{point}");
        for r in rounds {
            assert!(r["p99_ms"].as_f64().unwrap() > 10.0, "{r}");
            let offered = r["offered_rate"].as_f64().unwrap();
            assert!((100.0..160.0).contains(&offered), "{r}");
            assert!(r["achieved_rate"].as_f64().unwrap() > 0.0, "{r}");
        }
        // The model is printed beside each point.
        assert!(
            point["predicted_utilisation"].as_f64().unwrap() > 0.6,
            "{point}"
        );
        assert!(point["report"]
            .as_str()
            .unwrap()
            .ends_with(&format!("pool-{}", point["pool_size"])));
    }
    // One connection cannot keep up: the queue only grows.
    assert_eq!(one["predicted_p99_ms"], serde_json::Value::Null, "{one}");
    assert!(one["p99_ms"].as_f64().unwrap() > 150.0, "{one}");
    // The model's service time is pg_sleep's 10 ms and more (the round
    // trip; on a loaded machine, its waits for a CPU).
    let s = p["model"]["service_time_mean_ms"].as_f64().unwrap();
    assert!(s >= 10.0, "{s}");
    let reason = p["reason"].as_str().unwrap();
    assert!(reason.starts_with("max_size = 2: p99 "), "{reason}");
    assert!(reason.contains("; 1 connection: p99 "), "{reason}");
    let sqlx = p["settings"]["sqlx (Rust)"].as_str().unwrap();
    assert!(
        sqlx.starts_with("max_connections=2, min_connections="),
        "{sqlx}"
    );
    // Each measured size is a run's report directory.
    let report = common::read_json(&out.join("pool-2/report.json"));
    assert_eq!(report["strategies"][0]["name"], "pool-2");
    assert!(out.join("pool-1/report.html").is_file());
    assert!(out.join("calibration/report.json").is_file());
}

/// A plan that misses is never "Verified", and a rate not achieved is
/// reported beside the offered one: --verify on a budget of 2 connections
/// (max_connections 5 − reserved 3) at 250 req/s of 10 ms requests.
#[test]
fn a_missed_plan_says_so_with_the_rate_it_achieved() {
    let plan = poolbench_blocking([
        "plan",
        "scenarios/plan-sleep.toml",
        "--rps",
        "250",
        "--p99",
        "150ms",
        "--verify",
        "--max-connections",
        "5",
        "--duration",
        "1500ms",
        "--warmup",
        "500ms",
    ]);
    let (stdout, stderr) = (common::stdout(&plan), common::stderr(&plan));
    assert_eq!(plan.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("Verified") && !stderr.contains("Verified"));
    assert!(stdout.contains("pool    2:"), "{stdout}");
    assert!(stdout.contains("MISSED (> 150 ms)"), "{stdout}");
    assert!(stdout.contains("offered 2"), "{stdout}");
    assert!(stdout.contains("req/s, achieved "), "{stdout}");
    assert!(
        stdout.contains("no recommendation: the plan missed its target"),
        "{stdout}"
    );
    assert!(
        stderr.contains("poolbench: the plan missed its target"),
        "{stderr}"
    );
}

/// min by a burst: with --base-rps below --rps, plan measures a step from
/// one to the other on a pool of the recommended max that starts at a min
/// (Little's law's at the base rate first, then up), and the min it
/// recommends is the smallest whose step met the target; the lifecycle
/// settings come with a measured checkout check. pg_sleep(10 ms) at 400
/// req/s keeps about 4 connections busy; at the base 50 req/s, under 1.
#[test]
fn the_min_is_measured_by_a_step_from_the_base_rate() {
    let plan = poolbench_blocking([
        "plan",
        "scenarios/plan-sleep.toml",
        "--rps",
        "400",
        "--base-rps",
        "50",
        "--p99",
        "60ms",
        "--duration",
        "1500ms",
        "--warmup",
        "500ms",
        "--format",
        "json",
    ]);
    let stderr = common::stderr(&plan);
    assert_eq!(plan.status.code(), Some(0), "{stderr}");
    let p: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let max = p["recommended"]["max_size"].as_u64().unwrap();
    let min = p["recommended"]["min_size"].as_u64().unwrap();
    // 400 req/s × 10 ms: more than 4 connections.
    assert!(max >= 5, "{p}");
    let burst = &p["burst"];
    assert_eq!(burst["base_rate"], 50.0, "{burst}");
    assert_eq!(burst["rate"], 400.0, "{burst}");
    // At least 1 s at the base rate, the step's first 1.5 s measured.
    assert_eq!(burst["base_s"], 1.0, "{burst}");
    assert_eq!(burst["window_s"], 1.5, "{burst}");
    assert_eq!(burst["little_min"], 1, "{burst}");
    let points = burst["points"].as_array().unwrap();
    assert_eq!(points[0]["min_size"], 1, "{burst}");
    for point in points {
        assert_eq!(point["max_size"].as_u64(), Some(max), "{point}");
        let rounds = point["rounds"].as_array().unwrap();
        assert!(rounds.len() >= 3, "{point}");
        assert_eq!(point["opened"].as_array().unwrap().len(), rounds.len());
        for r in rounds {
            // The window is the step's: arrivals at the rate, not the base.
            let offered = r["offered_rate"].as_f64().unwrap();
            assert!((300.0..500.0).contains(&offered), "{r}");
            assert!(r["acquire_p99_ms"].as_f64().unwrap() <= r["p99_ms"].as_f64().unwrap());
        }
        // A min below the answer missed, the answer met; when not even
        // min = max met (a stall of a loaded machine can do that), every
        // min measured missed and the plan says so.
        let m = point["min_size"].as_u64().unwrap();
        let found = !burst["min_size"].is_null();
        assert_eq!(point["met"], found && m >= min, "{point} (min {min})");
    }
    // From a pool of 1 connection (and what 50 req/s grew it to) to 400
    // req/s: the pool opened connections inside the step's window.
    let first_opened: u64 = points[0]["opened"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(first_opened > 0, "{burst}");
    let why = p["min_reason"].as_str().unwrap();
    if burst["min_size"].is_null() {
        assert_eq!(min, max, "{p}");
        assert!(why.starts_with("min = max = "), "{why}");
        assert!(p["warnings"].to_string().contains("and not enough"), "{p}");
    } else {
        assert_eq!(burst["min_size"].as_u64(), Some(min), "{burst}");
        assert!(
            why.starts_with(&format!("min = {min}: a step from 50.0 to 400 req/s")),
            "{why}"
        );
    }
    // The lifecycle: a lifetime spread, no idle timeout unless min < max,
    // the checkout check measured (a local round trip: well under 6 ms).
    let l = &p["lifecycle"];
    assert_eq!(l["max_lifetime_s"], 1800.0, "{l}");
    assert!(l["replacements_max_per_s"].as_f64().unwrap() <= 1.0, "{l}");
    assert_eq!(l["idle_timeout_s"].is_null(), min == max, "{l}");
    let check = l["check_run"]["check_p50_ms"].as_f64().unwrap();
    assert!(check > 0.0 && check < 6.0, "{l}");
    assert!(l["settings"]["sqlx (Rust)"]
        .as_str()
        .unwrap()
        .contains("max_lifetime=Some(1800s)"));
}
