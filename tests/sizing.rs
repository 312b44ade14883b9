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

    // Plan from it: a modest target any server meets.
    let plan = poolbench_blocking([
        "plan",
        "--sweep",
        out_s,
        "--rps",
        "100",
        "--p99",
        "100ms",
        "--instances",
        "2",
    ]);
    let (stdout, stderr) = (common::stdout(&plan), common::stderr(&plan));
    assert_eq!(plan.status.code(), Some(0), "{stdout}\n{stderr}");
    for name in [
        "max_size",
        "max_connections",
        "min_connections",
        "min_idle",
        "maximumPoolSize",
        "minimumIdle",
        "min_size",
        "pool_size",
        "max_overflow",
        "default_pool_size",
        "min_pool_size",
        "Erlang C",
        "connection budget",
        "break-even",
    ] {
        assert!(stdout.contains(name), "no {name} in:\n{stdout}");
    }

    let plan = poolbench_blocking([
        "plan", "--sweep", out_s, "--rps", "100", "--p99", "100ms", "--format", "json",
    ]);
    assert_eq!(plan.status.code(), Some(0), "{}", common::stderr(&plan));
    let p: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let (max, min) = (
        p["max_size"].as_u64().unwrap(),
        p["min_size"].as_u64().unwrap(),
    );
    assert!(max >= 1 && min >= 1 && min <= max, "{p}");
    assert_eq!(p["budget"]["fits"], true);
    assert!(
        p["break_even"]["saved_ms_per_request"].as_f64().unwrap() > 0.0,
        "{p}"
    );

    // --verify runs the plan in open loop and says how close it came.
    let verify = poolbench_blocking([
        "plan",
        "--sweep",
        out_s,
        "--rps",
        "300",
        "--p99",
        "200ms",
        "--format",
        "json",
        "--verify",
        "--duration",
        "1500ms",
        "--warmup",
        "300ms",
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", common::stderr(&verify));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let v = &v["verification"];
    let achieved = v["achieved_rate"].as_f64().unwrap();
    assert!((250.0..350.0).contains(&achieved), "{v}");
    assert!(v["measured_p99_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["predicted_p99_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["measured_utilisation"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["met"], true, "{v}");

    // A p99 below the measured query p99 cannot be met by any pool size.
    let plan = poolbench_blocking(["plan", "--sweep", out_s, "--rps", "100", "--p99", "0.001ms"]);
    assert_eq!(plan.status.code(), Some(2));
    let err = common::stderr(&plan);
    assert!(err.contains("--p99 0.001 ms cannot be met"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // More traffic than the server ever delivered.
    let plan = poolbench_blocking(["plan", "--sweep", out_s, "--rps", "1e9", "--p99", "1s"]);
    assert_eq!(plan.status.code(), Some(2));
    assert!(common::stderr(&plan).contains("above the best measured throughput"));

    // A budget too small: the plan says so, recommends PgBouncer, and
    // exits 1 (issue 28: its answer is no).
    let plan = poolbench_blocking([
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
    ]);
    let stdout = common::stdout(&plan);
    assert_eq!(plan.status.code(), Some(1), "{}", common::stderr(&plan));
    assert!(
        stdout.contains("DOES NOT FIT") && stdout.contains("PgBouncer in transaction pooling"),
        "{stdout}"
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
