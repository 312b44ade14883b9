//! Where the database is, on either engine, in poolbench's order:
//! `--embedded`, `--dsn`, the scenario's `[database].dsn`, `DATABASE_URL`,
//! libpq's environment, else the embedded server. The first DSN given
//! decides the engine: a `mysql://` one is MySQL's, any other libpq's
//! (`postgres/resolve.rs` applies libpq's defaults to it).

use anyhow::Result;

use super::mysql;
use super::postgres::environment::{Environment, ProcessEnvironment};
use super::postgres::resolve::{self, Request, Source};
use super::target::{is_mysql_dsn, Target};

/// The outcome: a database to reach, or the embedded server to start
/// (and how it came to be chosen).
#[derive(Debug)]
pub enum Found {
    Target(Box<Target>),
    Embedded(Source),
}

/// Follows the documented order. Errors: a malformed connection string,
/// service or variable is bad input (exit 2); a file that cannot be used
/// (root certificate, client key) is environment (exit 3).
pub fn find(request: &Request<'_>) -> Result<Found> {
    find_in(request, &ProcessEnvironment)
}

fn find_in(request: &Request<'_>, env: &dyn Environment) -> Result<Found> {
    if let Some((dsn, origin)) = mysql_dsn(request, env) {
        let target = mysql::parse(&dsn, &origin)?;
        return Ok(Found::Target(Box::new(Target::MySql(target))));
    }
    Ok(match resolve::find(request, env)? {
        resolve::Found::Target(target) => Found::Target(Box::new(Target::Postgres(*target))),
        resolve::Found::Embedded(source) => Found::Embedded(source),
    })
}

/// A `mysql://` DSN in the order targets are looked for (`--dsn`, the
/// scenario's `dsn`, `DATABASE_URL`), with its origin; None when the first
/// one given is not MySQL's (or none is, or `--embedded`).
fn mysql_dsn(request: &Request<'_>, env: &dyn Environment) -> Option<(String, String)> {
    if request.embedded {
        return None;
    }
    let (dsn, origin) = if let Some(dsn) = request.flag {
        (dsn.to_string(), "--dsn".to_string())
    } else if let Some((dsn, path)) = request.scenario {
        (dsn.to_string(), format!("the `dsn` of {}", path.display()))
    } else {
        (env.var("DATABASE_URL")?, "DATABASE_URL".into())
    };
    is_mysql_dsn(&dsn).then_some((dsn, origin))
}

#[cfg(test)]
mod tests {
    use super::super::postgres::environment::fake::FakeEnvironment;
    use super::*;
    use std::path::Path;

    fn found(request: &Request<'_>, vars: &[(&str, &str)]) -> Found {
        find_in(request, &FakeEnvironment::new(vars)).unwrap()
    }

    #[test]
    fn the_first_dsn_given_decides_the_engine() {
        let mysql = "mysql://app:pw@db:3306/shop";
        let pg = "postgres://app:pw@db/shop";
        let flag = |dsn| Request {
            flag: Some(dsn),
            ..Request::default()
        };
        let target = |f: Found| match f {
            Found::Target(t) => *t,
            Found::Embedded(s) => panic!("embedded ({s:?})"),
        };
        let t = target(found(&flag(mysql), &[("DATABASE_URL", pg)]));
        assert!(!t.is_postgres());
        assert_eq!(
            t.redacted(),
            "mysql://app:****@db:3306/shop?ssl-mode=PREFERRED"
        );
        assert!(target(found(&flag(pg), &[("DATABASE_URL", mysql)])).is_postgres());
        // The scenario's DSN comes before DATABASE_URL.
        let scenario = Request {
            scenario: Some((pg, Path::new("s.toml"))),
            ..Request::default()
        };
        assert!(target(found(&scenario, &[("DATABASE_URL", mysql)])).is_postgres());
        let t = target(found(&Request::default(), &[("DATABASE_URL", mysql)]));
        assert!(!t.is_postgres());
    }

    #[test]
    fn embedded_when_forced_or_when_nothing_is_given() {
        let forced = Request {
            flag: Some("mysql://app@db/shop"),
            embedded: true,
            ..Request::default()
        };
        assert!(matches!(
            found(&forced, &[]),
            Found::Embedded(Source::ForcedEmbedded)
        ));
        assert!(matches!(
            found(&Request::default(), &[]),
            Found::Embedded(Source::Embedded)
        ));
    }
}
